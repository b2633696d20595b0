import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type StreamedResult, sseSubscribe, wsSubscribe } from '../helpers/clients.ts';
import { createUser, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun, waitForRun } from '../helpers/pipeline.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';
import { redisUrl, waitForRedisSubscribers } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

// Two API instances and a separate worker, all reaching Redis through proxies the test cuts
// mid-run and restores only after the run has finished in Postgres: every live stream, on both
// instances and both transports, must still deliver the whole run (from pipeline_events) and
// complete. The worker gets Redis back first and flushes the publishes it queued while the
// instances are still cut off, so those messages are lost to them for certain (with one proxy
// that depended on which client's reconnect timer fired first).

const redisPort = Number(new URL(redisUrl).port || 6379);
const proxy = new TcpProxy('127.0.0.1', redisPort);
const workerProxy = new TcpProxy('127.0.0.1', redisPort);
let instances: { app: TestApp; http: HttpServer }[] = [];
let worker: ServerProcess | undefined;
let author: TestUser;

beforeAll(async () => {
  await proxy.start();
  await workerProxy.start();
  const env = { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, RESPONSE_CACHE: 'off' };
  const first = await startTestApp(env);
  const second = await startTestApp(env, first);
  instances = await Promise.all(
    [first, second].map(async (app) => ({
      app,
      http: await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)),
    })),
  );
  author = await createUser(first.deps.db, 'AUTHOR');
});

// A worker left running would claim the next test's run.
afterEach(async () => {
  await worker?.stop('SIGKILL');
  worker = undefined;
});

afterAll(async () => {
  for (const { http } of instances) await http.close();
  // The instance that created the database drops it: close it last.
  for (const { app } of [...instances].reverse()) await app.close();
  await proxy.stop();
  await workerProxy.stop();
});

const runQuery = 'subscription($id: ID!) { pipelineRun(id: $id) { id sequence type } }';

/** The stream's results once the server completes it, or what it had after `ms`. */
async function completedWithin(
  stream: AsyncGenerator<StreamedResult>,
  ms: number,
): Promise<{ completed: boolean; results: StreamedResult[] }> {
  const results: StreamedResult[] = [];
  const reading = (async () => {
    for await (const result of stream) results.push(result);
    return true;
  })();
  const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms));
  return { completed: await Promise.race([reading, timeout]), results };
}

describe('a Redis outage during a run', { timeout: 90_000 }, () => {
  it('strands no subscriber: each catches up from pipeline_events and completes', async () => {
    const [first] = instances;
    const db = first!.app.deps.db;
    const runId = await queueRun(first!.app, author);
    const channel = `${first!.app.deps.config.REDIS_PREFIX}pipelineRun:${localId(runId)}`;
    const streams = instances.flatMap(({ http }) => {
      const url = `http://127.0.0.1:${http.port}/graphql`;
      const ws = wsSubscribe(url.replace('http', 'ws'), runQuery, { id: runId }, author);
      return [
        { name: `sse@${http.port}`, stream: sseSubscribe(url, runQuery, { id: runId }, author) },
        { name: `ws@${http.port}`, stream: ws, dispose: () => ws.dispose() },
      ];
    });
    const outcomes = streams.map(({ stream }) => completedWithin(stream, 45_000));
    // Both instances listen before the worker starts: the run's events are meant to come live.
    const redis = new Redis(redisUrl);
    try {
      for (const deadline = Date.now() + 10_000; ; ) {
        const [, count] = (await redis.pubsub('NUMSUB', channel)) as [string, number | string];
        if (Number(count) === 2) break;
        if (Date.now() > deadline) throw new Error(`both instances never subscribed (${count})`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      redis.disconnect();
    }
    worker = await startProcess('worker', {
      DATABASE_URL: first!.app.database.url,
      REDIS_URL: `redis://127.0.0.1:${workerProxy.port}`,
      REDIS_PREFIX: first!.app.deps.config.REDIS_PREFIX,
      WORKER: 'off',
      PIPELINE_POLL_MS: '50',
      PIPELINE_STEP_DELAY_MS: '300',
    });
    await waitForRun(db, localId(runId), ['RUNNING']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Sees what the worker publishes, directly.
    const monitor = new Redis(redisUrl);
    const published: string[] = [];
    monitor.on('message', (_channel, message: string) => published.push(message));
    await monitor.subscribe(channel);
    await Promise.all([proxy.stop(), workerProxy.stop()]);
    const cutAt = Date.now();
    const run = await waitForRun(db, localId(runId), undefined, 30_000);
    expect(run.status).toBe('SUCCEEDED');
    expect(Date.now() - cutAt, 'the run finished while Redis was away').toBeLessThan(8000);
    await new Promise((resolve) => setTimeout(resolve, cutAt + 8000 - Date.now()));
    await workerProxy.start();
    // Until the worker's queued publishes (up to run.succeeded) went out, or were dropped.
    for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
      if (published.some((message) => message.includes('run.succeeded'))) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    monitor.disconnect();
    await proxy.start();

    const stored = await db
      .selectFrom('pipeline_events')
      .select(['seq', 'type'])
      .where('run_id', '=', localId(runId))
      .orderBy('seq')
      .execute();
    expect(stored.at(-1)?.type).toBe('run.succeeded');
    const expected = stored.map((row) => [row.seq, row.type]);
    for (const [index, outcome] of (await Promise.all(outcomes)).entries()) {
      const { name } = streams[index]!;
      expect(outcome.completed, `${name} completed`).toBe(true);
      const events = outcome.results.map((result) => result.data!.pipelineRun);
      expect(
        events.map((event) => [event.sequence, event.type]),
        `${name}: every event once, in order`,
      ).toEqual(expected);
    }
    await Promise.all(streams.map((stream) => stream.dispose?.()));
  });

  it('completes a stream whose terminal event was published where it never arrived', async () => {
    const [{ app, http }] = instances as [(typeof instances)[number]];
    // Another instance, cut off from Redis: what it publishes never reaches the subscriber.
    const isolated = new TcpProxy('127.0.0.1', redisPort);
    await isolated.start();
    const cutOff = await startTestApp(
      { REDIS_URL: `redis://127.0.0.1:${isolated.port}`, RESPONSE_CACHE: 'off' },
      app,
    );
    await isolated.stop();
    try {
      const runId = await queueRun(app, author);
      const url = `http://127.0.0.1:${http.port}/graphql`;
      const outcome = completedWithin(sseSubscribe(url, runQuery, { id: runId }, author), 8000);
      await waitForRedisSubscribers([
        `${app.deps.config.REDIS_PREFIX}pipelineRun:${localId(runId)}`,
      ]);
      const cancelled = await cutOff.gql(
        'mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status } } }',
        { id: runId },
        { token: author.token },
      );
      expect(cancelled.data?.cancelPipeline.pipelineRun.status).toBe('CANCELLED');
      const { completed, results } = await outcome;
      expect(completed).toBe(true);
      expect(results.map((result) => result.data!.pipelineRun.type)).toEqual([
        'run.queued',
        'run.cancelled',
      ]);
    } finally {
      await cutOff.close();
    }
  });
});
