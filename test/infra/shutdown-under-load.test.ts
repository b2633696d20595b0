import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser } from '../helpers/factories.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';
import { adminDatabaseUrl, redisUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

let app: TestApp;
let proxy: TcpProxy;

beforeAll(async () => {
  app = await startTestApp();
  const author = await createUser(app.deps.db, 'AUTHOR');
  await createPosts(
    app.deps.db,
    Array.from({ length: 30 }, (_, index) => ({ authorId: author.id, title: `Post ${index}` })),
  );
  proxy = new TcpProxy('127.0.0.1', Number(new URL(adminDatabaseUrl).port || 5432));
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await app?.close();
});

const feed = JSON.stringify({ query: '{ posts(first: 20) { edges { node { title } } } }' });

interface Outcome {
  /** Sent as x-request-id: the server's log line of the request carries it. */
  id: string;
  startedAt: number;
  endedAt?: number;
  status?: number;
  body?: string;
  error?: string;
  connection?: string;
}

/** POSTs the feed query over `agent`; `abortAfterMs` cuts the connection while it is in flight. */
function post(url: URL, agent: http.Agent | false, abortAfterMs?: number): Promise<Outcome> {
  const outcome: Outcome = { id: randomUUID(), startedAt: Date.now() };
  return new Promise((resolve) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'x-request-id': outcome.id },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () =>
          resolve({
            ...outcome,
            endedAt: Date.now(),
            status: response.statusCode,
            body,
            connection: response.headers.connection,
          }),
        );
        response.on('error', (error) => resolve({ ...outcome, error: String(error) }));
      },
    );
    request.on('error', (error) => resolve({ ...outcome, error: String(error) }));
    request.end(feed);
    if (abortAfterMs !== undefined) {
      setTimeout(() => {
        request.destroy();
      }, abortAfterMs);
    }
  });
}

const jsonLines = (output: string) =>
  output.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line)] : []));

const logsWithoutDebug = (server: ServerProcess) =>
  server
    .output()
    .split('\n')
    .filter((line) => !line.includes('"level":20'))
    .join('\n');

/** `npm start` over `databaseUrl` with Redis, no worker, no cache: every request reads Postgres. */
function startQuire(databaseUrl: URL, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startProcess('main', {
    DATABASE_URL: databaseUrl.toString(),
    WORKER: 'off',
    CACHE: 'off',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `quire-test:${app.database.name}:`,
    // Two busy cores: a 50 ms bound would open the Redis breaker (a warning) on a stall.
    REDIS_COMMAND_TIMEOUT_MS: '1000',
    ...env,
  });
}

describe('SIGTERM under load', () => {
  it('answers every accepted request in full, refuses new connections and exits 0 without errors', async () => {
    const viaProxy = new URL(app.database.url);
    viaProxy.port = String(proxy.port);
    const graceMs = 5000;
    const server = await startQuire(viaProxy, { SHUTDOWN_GRACE_MS: String(graceMs) });
    const url = new URL(server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
    try {
      // Every database reply takes 150 ms: each request is in flight for a while.
      proxy.delayMs = 150;
      let stopped = false;
      const outcomes: Outcome[] = [];
      let answered: () => void = () => {};
      // Twelve keep-alive connections, each sending its next request as soon as it is answered.
      const loops = Array.from({ length: 12 }, async () => {
        while (!stopped) {
          const outcome = await post(url, agent);
          outcomes.push(outcome);
          answered();
          if (outcome.error?.includes('ECONNREFUSED')) return;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // Just after an answer: its connection's next request waits on the database.
      await new Promise<void>((resolve) => {
        answered = resolve;
      });
      await new Promise((resolve) => setTimeout(resolve, 30));

      const exited = once(server.child, 'exit');
      const sigtermAt = Date.now();
      server.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fresh = await post(url, false);
      const [code] = (await exited) as [number | null];
      const exitedAfterMs = Date.now() - sigtermAt;
      stopped = true;
      await Promise.all(loops);

      expect(fresh.error).toMatch(/ECONNREFUSED/);
      const full = (outcome: Outcome) => {
        expect(outcome).toMatchObject({ status: 200 });
        const body = JSON.parse(outcome.body!);
        expect(body).toEqual({ data: { posts: { edges: expect.any(Array) } } });
        expect(body.data.posts.edges).toHaveLength(20);
      };
      const before = outcomes.filter((outcome) => outcome.startedAt < sigtermAt - 100);
      expect(before.length).toBeGreaterThan(12);
      for (const outcome of before) full(outcome);
      // Sent around or after the signal: answered in full, or never read (a connection refused,
      // or closed as idle before the request reached the server), never an error answer.
      for (const outcome of outcomes.filter((outcome) => outcome.startedAt >= sigtermAt - 100)) {
        if (outcome.error) expect(outcome.error).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);
        else full(outcome);
      }
      expect(code).toBe(0);
      expect(exitedAfterMs).toBeLessThan(graceMs);
      // Answers sent once the shutdown began (their log line, written before the answer, is
      // later than the signal's) tell their clients not to send another request on the
      // connection the server is about to close.
      const lines = jsonLines(server.output());
      const shutdownAt = lines.find((line) => line.msg === 'shutting down').time as number;
      const answeredLater = new Set(
        lines
          .filter((line) => line.msg === 'request' && line.time > shutdownAt)
          .map((line) => line.reqId),
      );
      const inFlight = outcomes.filter((outcome) => answeredLater.has(outcome.id));
      expect(inFlight.length).toBeGreaterThan(0);
      expect(inFlight.map((outcome) => outcome.connection)).toEqual(inFlight.map(() => 'close'));
      expect(lines.filter((line) => line.level >= 40 && line.msg !== 'slow sql')).toEqual([]);
      expect(server.output()).not.toMatch(/destroyed|INTERNAL|Unexpected error/);
    } catch (error) {
      console.log(logsWithoutDebug(server));
      throw error;
    } finally {
      proxy.delayMs = 0;
      agent.destroy();
      await server.stop('SIGKILL');
    }
  }, 60_000);
});

describe('SIGTERM after clients gave up', () => {
  it('lets the operations of closed connections finish before the pool closes', async () => {
    const viaProxy = new URL(app.database.url);
    viaProxy.port = String(proxy.port);
    // Two connections: most of the operations below wait for one when the signal comes.
    const server = await startQuire(viaProxy, { DB_POOL_SIZE: '2' });
    const url = new URL(server.url);
    try {
      // The database holds every statement until the server has taken the signal: its
      // operations are still executing then, whatever the machine's load.
      proxy.freeze();
      // Clients that give up on their requests, as a load tool ending its run does: no
      // connection is open when the signal comes.
      await Promise.all(Array.from({ length: 12 }, () => post(url, false, 500)));
      const exited = once(server.child, 'exit');
      server.child.kill('SIGTERM');
      while (!server.output().includes('"msg":"shutting down"')) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      proxy.unfreeze();
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      const lines = jsonLines(server.output());
      // Those the server read (on a busy machine, maybe not every one) finished after the signal
      // and before the pool closed.
      const requests = lines.filter((line) => line.msg === 'request');
      expect(requests.length).toBeGreaterThan(0);
      expect(requests.map((line) => line.sqlQueries)).toEqual(requests.map(() => 1));
      expect(requests.map((line) => line.status)).toEqual(requests.map(() => 200));
      const signalled = lines.findIndex((line) => line.msg === 'shutting down');
      const httpStopped = lines.findIndex((line) => line.step === 'http server');
      expect(lines.indexOf(requests.at(-1))).toBeGreaterThan(signalled);
      expect(lines.indexOf(requests.at(-1))).toBeLessThan(httpStopped);
      expect(lines.filter((line) => line.level >= 40 && line.msg !== 'slow sql')).toEqual([]);
      expect(server.output()).not.toMatch(/destroyed|INTERNAL|Unexpected error/);
    } catch (error) {
      console.log(logsWithoutDebug(server));
      throw error;
    } finally {
      proxy.unfreeze();
      await server.stop('SIGKILL');
    }
  }, 60_000);
});
