import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createDatabase, createPool, type Db } from '../../src/db/database.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation, waitForRun } from '../helpers/pipeline.ts';
import { freePort, type ServerProcess, startProcess } from '../helpers/processes.ts';
import { adminDatabaseUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

let app: TestApp;
let proxy: TcpProxy;

beforeAll(async () => {
  app = await startTestApp();
  const author = await createUser(app.deps.db, 'AUTHOR');
  await createPosts(app.deps.db, [{ authorId: author.id, title: 'Still here' }]);
  proxy = new TcpProxy('127.0.0.1', Number(new URL(adminDatabaseUrl).port || 5432));
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await app?.close();
});

describe('graceful shutdown', () => {
  it('on SIGTERM finishes the in-flight request, refuses new ones and exits 0', async () => {
    const viaProxy = new URL(app.database.url);
    viaProxy.port = String(proxy.port);
    const server = await startProcess('main', { DATABASE_URL: viaProxy.toString(), WORKER: 'off' });
    try {
      // Every database reply now takes 800 ms: the request below is slow.
      proxy.delayMs = 800;
      const slow = fetch(`${server.url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ posts(first: 1) { edges { node { title } } } }' }),
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const exited = once(server.child, 'exit');
      server.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));

      await expect(fetch(`${server.url}`, { method: 'GET' })).rejects.toThrow();
      const response = await slow;
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        data: { posts: { edges: [{ node: { title: 'Still here' } }] } },
      });
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      const output = server.output();
      expect(output).toContain('"step":"http server","msg":"stopped"');
      // The structured logs of that request: its own line, and the statement the slow database held.
      const lines = output
        .split('\n')
        .flatMap((line) => (line.startsWith('{') ? [JSON.parse(line)] : []));
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'request',
          status: 200,
          sqlQueries: 1,
          operation: 'anonymous',
        }),
      );
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'slow sql',
          sql: expect.stringContaining('select'),
          durationMs: expect.any(Number),
        }),
      );
    } catch (error) {
      console.log(
        server
          .output()
          .split('\n')
          .filter((line) => !line.includes('"level":20'))
          .join('\n'),
      );
      throw error;
    } finally {
      proxy.delayMs = 0;
      await server.stop('SIGKILL');
    }
  });
});

const watchRun = `subscription($runId: ID!) { pipelineRun(id: $runId) { type runStatus } }`;

/** Starts a pipeline run over a new draft through `server`'s API; returns its ids. */
async function startRun(
  server: ServerProcess,
  db: Db,
  author: TestUser,
): Promise<{ id: string; globalId: string }> {
  const [post] = await createPosts(db, [
    { authorId: author.id, body: solarArticle, status: 'DRAFT' },
  ]);
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${author.token}` },
    body: JSON.stringify({
      query: startPipelineMutation,
      variables: { input: { postId: globalId('Post', post!.id) } },
    }),
  });
  const { data } = (await response.json()) as {
    data: { startPipeline: { pipelineRun: { id: string } } };
  };
  const id = Buffer.from(data.startPipeline.pipelineRun.id, 'base64').toString().split(':')[1]!;
  return { id, globalId: data.startPipeline.pipelineRun.id };
}

/** The raw text of an SSE subscription to the run, until the server ends the stream. */
async function sseText(server: ServerProcess, runId: string, token: string): Promise<string> {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      accept: 'text/event-stream',
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query: watchRun, variables: { runId } }),
  });
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
    }
  } catch {
    // A cut connection: the text so far tells what arrived.
  }
  return text;
}

const jsonLines = (output: string) =>
  output.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line)] : []));

describe('shutdown of the embedded default with a pipeline run in flight', () => {
  let dataDir: string;
  let port: number;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'quire-shutdown-'));
    // As root, Postgres runs as the `postgres` user, which must enter the data folder.
    await chmod(dataDir, 0o755);
    port = await freePort();
  });

  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ['SIGINT', 'to its process group, as Ctrl-C in a terminal'],
    ['SIGTERM', 'to the process, as a supervisor'],
  ] as const)(
    'on %s %s releases the run, completes SSE streams, stops every part in order and exits 0',
    async (signal, target) => {
      const toGroup = target.startsWith('to its process group');
      const server = await startProcess(
        'main',
        {
          DATABASE_URL: '',
          REDIS_URL: '',
          DATA_DIR: dataDir,
          EMBEDDED_PG_PORT: String(port),
          WORKER: 'on',
          PIPELINE_STEP_DELAY_MS: '300',
        },
        { ownProcessGroup: toGroup },
      );
      const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
      const pool = createPool(`postgres://postgres:quire@127.0.0.1:${port}/quire`, config);
      const db = createDatabase(pool, createLogger(config), config);
      try {
        const author = await createUser(db, 'AUTHOR');
        const run = await startRun(server, db, author);
        const stream = sseText(server, run.globalId, author.token);
        await waitForRun(db, run.id, ['RUNNING']);
        await new Promise((resolve) => setTimeout(resolve, 400));
        // The test's own connections must not keep Postgres from stopping.
        await db.destroy();
        const exited = once(server.child, 'exit');
        // The embedded Postgres is started in a group of its own: the group's signal reaches
        // only Quire, which stops it last.
        if (toGroup) process.kill(-server.child.pid!, signal);
        else server.child.kill(signal);
        const [code] = (await exited) as [number | null];
        expect(code).toBe(0);

        const text = await stream;
        expect(text).toMatch(/event: complete\n/);
        const statuses = [...text.matchAll(/"runStatus":"(\w+)"/g)].map((match) => match[1]);
        expect(['QUEUED', 'SUCCEEDED']).toContain(statuses.at(-1));

        const lines = jsonLines(server.output());
        const after = lines.slice(lines.findIndex((line) => line.msg === 'shutting down'));
        expect(after.filter((line) => line.msg === 'stopped').map((line) => line.step)).toEqual([
          'pipeline worker',
          'http server',
          'database pool and redis',
          'embedded postgres',
        ]);
        // A statement slowed by a loaded machine may warn; nothing else may, and the migrations
        // of the first start log as migration steps, never as slow SQL.
        expect(lines.filter((line) => line.level >= 40 && line.msg !== 'slow sql')).toEqual([]);
        const slow = lines.filter((line) => line.msg === 'slow sql');
        expect(slow.filter((line) => /\b(create|alter)\s+(table|index)\b/i.test(line.sql))).toEqual(
          [],
        );
      } catch (error) {
        console.log(server.output());
        throw error;
      } finally {
        await db.destroy().catch(() => {});
        await server.stop('SIGKILL');
      }
    },
    120_000,
  );
});

describe('shutdown deadline', () => {
  it('exits by SHUTDOWN_DEADLINE_MS when a step cannot finish', async () => {
    const viaProxy = new URL(app.database.url);
    viaProxy.port = String(proxy.port);
    const server = await startProcess('main', {
      DATABASE_URL: viaProxy.toString(),
      WORKER: 'on',
      PIPELINE_STEP_DELAY_MS: '300',
      SHUTDOWN_DEADLINE_MS: '2000',
      SHUTDOWN_GRACE_MS: '500',
    });
    try {
      const author = await createUser(app.deps.db, 'AUTHOR');
      const run = await startRun(server, app.deps.db, author);
      await waitForRun(app.deps.db, run.id, ['RUNNING']);
      // The database stops answering the worker: its release never commits.
      proxy.delayMs = 60_000;
      const started = Date.now();
      const exited = once(server.child, 'exit');
      server.child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(1);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(jsonLines(server.output())).toContainEqual(
        expect.objectContaining({ msg: 'shutdown deadline passed', step: 'pipeline worker' }),
      );
    } finally {
      proxy.delayMs = 0;
      await server.stop('SIGKILL');
    }
  }, 30_000);
});

describe('a port in use', () => {
  it('ends `npm start` with one line naming it and exit 1, before the worker starts', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--import', './src/instrumentation.ts', 'src/main.ts'],
        {
          cwd: fileURLToPath(new URL('../..', import.meta.url)),
          env: {
            ...process.env,
            DATABASE_URL: app.database.url,
            HOST: '127.0.0.1',
            PORT: String(port),
            LOG_LEVEL: 'info',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(1);
      expect(stderr.trim()).toBe(`port ${port} is in use: set PORT`);
      expect(stdout).not.toMatch(/pipeline worker started|serving GraphQL|Internal error/);
      // What had started was stopped in order before the exit.
      expect(stdout).toContain('"step":"database pool and redis"');
    } finally {
      taken.close();
    }
  });
});
