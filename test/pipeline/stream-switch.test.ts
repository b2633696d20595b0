import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/context.ts';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { toEventMessage } from '../../src/modules/pipeline/pipeline.repository.ts';
import { STREAM_BUFFER, streamRunEvents } from '../../src/modules/pipeline/pipeline.stream.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { sseSubscribe, take, wsSubscribe } from '../helpers/clients.ts';
import { createUser, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun } from '../helpers/pipeline.ts';
import { redisUrl } from '../helpers/services.ts';

// No worker runs here: a queued run stays queued until the test cancels it, so the only events
// are run.queued (stored) and run.cancelled (the test decides when it is published).
let app: TestApp;
let http: HttpServer;
let author: TestUser;

beforeAll(async () => {
  app = await startTestApp({ REDIS_URL: redisUrl });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

async function cancel(runId: string) {
  const result = await app.gql(
    'mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status } } }',
    { id: runId },
    { token: author.token },
  );
  expect(result.data!.cancelPipeline.pipelineRun.status).toBe('CANCELLED');
}

const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms),
    ),
  ]);

describe('the switch from replay to live', () => {
  it('delivers an event published after the replay was read but before the stream went live', async () => {
    const runId = await queueRun(app, author);
    const ctx = await createContext(app.deps, {
      authorization: `Bearer ${author.token}`,
      clientAddress: null,
    });
    const stream = await streamRunEvents(ctx, localId(runId), null);
    // The stream now sits between its replay and its live phase, as a slow consumer leaves it.
    expect((await stream.next()).value?.type).toBe('run.queued');
    await cancel(runId);
    // Give Redis time to deliver the message while nobody pulls from the stream.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const next = await within(stream.next(), 5000);
    expect(next.value?.type).toBe('run.cancelled');
    expect((await within(stream.next(), 5000)).done).toBe(true);
  });

  it('completes at once when resuming after the terminal event, over SSE and graphql-ws', async () => {
    const runId = await queueRun(app, author);
    await cancel(runId);
    const url = `http://127.0.0.1:${http.port}/graphql`;
    const query = `subscription($id: ID!, $after: ID) {
      pipelineRun(id: $id, afterEventId: $after) { id type }
    }`;
    const all = await within(take(sseSubscribe(url, query, { id: runId }, author), 10), 5000);
    expect(all.map((result) => result.data!.pipelineRun.type)).toEqual([
      'run.queued',
      'run.cancelled',
    ]);
    const terminal = all[1]!.data!.pipelineRun.id as string;
    const variables = { id: runId, after: terminal };
    expect(await within(take(sseSubscribe(url, query, variables, author), 10), 5000)).toEqual([]);
    const ws = wsSubscribe(url.replace('http', 'ws'), query, variables, author);
    expect(await within(take(ws, 10), 5000)).toEqual([]);
    await ws.dispose();
  });

  it('holds at most STREAM_BUFFER events for a consumer that does not read, then delivers all in order', async () => {
    const runId = localId(await queueRun(app, author));
    const ctx = await createContext(app.deps, {
      authorization: `Bearer ${author.token}`,
      clientAddress: null,
    });
    const stream = await streamRunEvents(ctx, runId, null);
    expect((await stream.next()).value?.type).toBe('run.queued');
    const run = await app.deps.db
      .selectFrom('pipeline_runs')
      .select('post_id')
      .where('id', '=', runId)
      .executeTakeFirstOrThrow();
    // Stored as the worker stores them, then published while the consumer reads nothing.
    const count = 2 * STREAM_BUFFER;
    const rows = await app.deps.db
      .insertInto('pipeline_events')
      .values(
        Array.from({ length: count }, (_, index) => ({
          run_id: runId,
          seq: index + 2,
          type: index === count - 1 ? 'run.cancelled' : 'run.progress',
          payload: JSON.stringify({ index }),
        })),
      )
      .returningAll()
      .execute();
    for (const row of rows)
      app.deps.pubsub.publish('pipelineRun', runId, toEventMessage(row, run.post_id));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((stream as unknown as { buffered: number }).buffered).toBe(STREAM_BUFFER);
    const seqs: number[] = [];
    for (;;) {
      const next = await within(stream.next(), 5000);
      if (next.done) break;
      seqs.push(next.value.seq);
    }
    expect(seqs).toEqual(rows.map((row) => row.seq));
  });
});
