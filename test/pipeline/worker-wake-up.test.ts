import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../src/db/tables.ts';
import { LISTENER_APPLICATION_NAME } from '../../src/infra/pg-listener.ts';
import { SIGNAL_CHANNEL } from '../../src/infra/pg-pubsub.ts';
import { PIPELINE_CHANNEL } from '../../src/modules/pipeline/pipeline.service.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation, waitForRun } from '../helpers/pipeline.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';
import { redisUrl } from '../helpers/services.ts';

// Workers poll only every minute here: a run claimed within seconds was woken by a notification
// or by the poll the worker makes when its LISTEN connection is back.
const POLL_MS = 60_000;
/** Well under POLL_MS: the retry a lost LISTEN connection waits for (1 s), a claim, a loaded machine. */
const PROMPT_MS = 10_000;
const CLAIMED: RunStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

let app: TestApp;
let author: TestUser;
const processes: ServerProcess[] = [];

async function spawn(entry: 'main' | 'worker', env: Record<string, string>) {
  const started = await startProcess(entry, {
    DATABASE_URL: app.database.url,
    REDIS_PREFIX: app.deps.config.REDIS_PREFIX,
    WORKER: 'on',
    PIPELINE_POLL_MS: String(POLL_MS),
    ...env,
  });
  processes.push(started);
  return started;
}

/**
 * This database's backends other than pools' (application_name 'quire'): the LISTEN connections
 * of the spawned processes (the test app's, over Redis, listens to nothing).
 */
async function listenBackends() {
  const { rows } = await sql<{ pid: number; application_name: string; query: string }>`
    select pid, application_name, query from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and application_name <> 'quire'
    order by pid`.execute(app.deps.db);
  return rows;
}

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await done()); ) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A LISTEN backend other than `gone` whose last statement was a LISTEN for `channel`. */
function listeningOn(channel: string, gone: number[] = []) {
  return async () =>
    (await listenBackends()).some(
      (backend) =>
        !gone.includes(backend.pid) && new RegExp(`listen "?${channel}\\b`).test(backend.query),
    );
}

async function graphql(url: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${author.token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: unknown[] };
}

/** Queues a run over a new draft through `url` (the test app when omitted); its local id. */
async function queueRun(url?: string): Promise<string> {
  const [post] = await createPosts(app.deps.db, [
    { authorId: author.id, body: solarArticle, status: 'DRAFT' },
  ]);
  const variables = { input: { postId: globalId('Post', post!.id) } };
  const result = url
    ? await graphql(url, startPipelineMutation, variables)
    : await app.gql(startPipelineMutation, variables, { token: author.token });
  expect(result.errors).toBeUndefined();
  return localId(result.data!.startPipeline.pipelineRun.id);
}

/** Milliseconds until a worker claims `runId` (fails past PROMPT_MS). */
async function claimedWithin(runId: string): Promise<number> {
  const started = Date.now();
  await waitForRun(app.deps.db, runId, CLAIMED, PROMPT_MS);
  return Date.now() - started;
}

beforeAll(async () => {
  // Over Redis: the test app's own LISTEN connection stays closed.
  app = await startTestApp({ REDIS_URL: redisUrl, RATE_LIMIT_START_PIPELINE: '1000' });
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((child) => child.stop()));
});

afterAll(async () => {
  await app?.close();
});

describe('the pipeline worker wakes through the process LISTEN connection', () => {
  it('shares it with viewer signals in a server without Redis: one LISTEN backend', async () => {
    const server = await spawn('main', { REDIS_URL: '' });
    // An authenticated request makes the server listen for viewer changes too.
    expect((await graphql(server.url, '{ __typename }')).errors).toBeUndefined();
    await until(listeningOn(SIGNAL_CHANNEL), 'the server never listened for viewer signals');
    expect((await listenBackends()).map((backend) => backend.application_name)).toEqual([
      LISTENER_APPLICATION_NAME,
    ]);
    // The worker hears a new run on it.
    expect(await claimedWithin(await queueRun(server.url))).toBeLessThan(PROMPT_MS);
    expect(await listenBackends()).toHaveLength(1);
  });

  it('is the only LISTEN backend of a standalone worker (with Redis)', async () => {
    await spawn('worker', { REDIS_URL: redisUrl });
    await until(listeningOn(PIPELINE_CHANNEL), 'the worker never listened');
    expect((await listenBackends()).map((backend) => backend.application_name)).toEqual([
      LISTENER_APPLICATION_NAME,
    ]);
    expect(await claimedWithin(await queueRun())).toBeLessThan(PROMPT_MS);
  });

  it('once killed and back, claims the run queued meanwhile and the runs after, without waiting for the poll', async () => {
    const server = await spawn('main', { REDIS_URL: '' });
    await until(listeningOn(PIPELINE_CHANNEL), 'the worker never listened');
    const killed: number[] = [];
    // Queued while no connection of the server listens: its notification is lost. If the retry
    // (a second after the loss) came first, the notification may have been heard: again.
    for (let attempt = 0; ; attempt += 1) {
      expect(attempt).toBeLessThan(3);
      const backends = await listenBackends();
      expect(backends.length).toBeGreaterThan(0);
      for (const { pid } of backends) {
        killed.push(pid);
        await sql`select pg_terminate_backend(${pid}::int)`.execute(app.deps.db);
      }
      const missed = await queueRun(server.url);
      const backAlready = (await listenBackends()).some(({ pid }) => !killed.includes(pid));
      if (!backAlready) {
        // Only the poll the worker makes when LISTEN runs again can claim it this soon.
        expect(await claimedWithin(missed)).toBeLessThan(PROMPT_MS);
        break;
      }
      await claimedWithin(missed);
      await until(listeningOn(PIPELINE_CHANNEL, killed), 'the LISTEN connection never came back');
    }
    await until(listeningOn(PIPELINE_CHANNEL, killed), 'the LISTEN connection never came back');
    // Back: new runs are heard again.
    expect(await claimedWithin(await queueRun(server.url))).toBeLessThan(PROMPT_MS);
    expect(
      (await listenBackends()).map(({ pid, application_name }) => [
        killed.includes(pid),
        application_name,
      ]),
    ).toEqual([[false, LISTENER_APPLICATION_NAME]]);
  });

  it('passes from a stopped worker to the next one started in the same process', async () => {
    // Without Redis: the in-process workers wake through this instance's listener.
    const instance = await startTestApp({ PIPELINE_POLL_MS: String(POLL_MS) }, app);
    try {
      const first = new PipelineWorker(instance.deps);
      await first.start();
      await first.stop();
      const second = new PipelineWorker(instance.deps);
      await second.start();
      try {
        // Queued once the second's first claim (at start) found nothing: only a notification
        // wakes it this soon.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        expect(await claimedWithin(await queueRun())).toBeLessThan(PROMPT_MS);
      } finally {
        await second.stop();
      }
    } finally {
      await instance.close();
    }
  });
});
