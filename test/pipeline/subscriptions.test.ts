import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type StreamedResult, sseSubscribe, take, wsSubscribe } from '../helpers/clients.ts';
import { createUser, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun, waitForRun } from '../helpers/pipeline.ts';
import { redisUrl } from '../helpers/services.ts';

const runSubscription = /* GraphQL */ `
  subscription Run($id: ID!, $after: ID) {
    pipelineRun(id: $id, afterEventId: $after) { id sequence type progress step stepProgress runStatus }
  }
`;

interface RunEvent {
  id: string;
  sequence: number;
  type: string;
  progress: number;
}

let app: TestApp;
let http: HttpServer;
let worker: PipelineWorker;
let author: TestUser;

const events = (results: StreamedResult[]) =>
  results.map((result) => result.data!.pipelineRun as RunEvent);

beforeAll(async () => {
  app = await startTestApp({
    REDIS_URL: redisUrl,
    PIPELINE_STEP_DELAY_MS: '15',
    PIPELINE_POLL_MS: '50',
  });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await worker?.stop();
  await http?.close();
  await app?.close();
});

describe('pipelineRun subscription', () => {
  it('delivers every event of a run, in order, to an SSE and a graphql-ws client at once', async () => {
    const runId = await queueRun(app, author);
    const url = `http://127.0.0.1:${http.port}/graphql`;
    const sse = take(
      sseSubscribe(url, runSubscription, { id: runId }, { token: author.token }),
      10_000,
    );
    const ws = wsSubscribe(
      url.replace('http', 'ws'),
      runSubscription,
      { id: runId },
      { token: author.token },
    );
    const wsEvents = take(ws, 10_000);
    // Both clients are subscribed to a queued run before any worker exists: everything after is live.
    await new Promise((resolve) => setTimeout(resolve, 200));
    worker = new PipelineWorker(app.deps);
    await worker.start();
    const [sseEvents, socketEvents] = [events(await sse), events(await wsEvents)];
    await ws.dispose();

    const stored = await app.deps.db
      .selectFrom('pipeline_events')
      .select(['seq', 'type'])
      .where('run_id', '=', localId(runId))
      .orderBy('seq')
      .execute();
    expect(stored.length).toBeGreaterThan(20);
    const expected = stored.map((row) => [row.seq, row.type]);
    expect(sseEvents.map((event) => [event.sequence, event.type])).toEqual(expected);
    expect(socketEvents.map((event) => [event.sequence, event.type])).toEqual(expected);
    expect(sseEvents.at(-1)).toMatchObject({ type: 'run.succeeded', progress: 100 });
    const progress = sseEvents.map((event) => event.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('resumes after event k with exactly events k+1.. (none missing, none twice), over both transports', async () => {
    const runId = await queueRun(app, author);
    const url = `http://127.0.0.1:${http.port}/graphql`;
    // Disconnect after 8 events, mid-run.
    const firstPart = events(
      await take(sseSubscribe(url, runSubscription, { id: runId }, { token: author.token }), 8),
    );
    expect(firstPart.map((event) => event.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const k = firstPart.at(-1)!;
    const rest = events(
      await take(
        sseSubscribe(url, runSubscription, { id: runId, after: k.id }, { token: author.token }),
        10_000,
      ),
    );
    const ws = wsSubscribe(
      url.replace('http', 'ws'),
      runSubscription,
      { id: runId, after: k.id },
      { token: author.token },
    );
    const restOverWs = events(await take(ws, 10_000));
    await ws.dispose();
    await waitForRun(app.deps.db, localId(runId));
    const { count } = await app.deps.db
      .selectFrom('pipeline_events')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('run_id', '=', localId(runId))
      .executeTakeFirstOrThrow();
    const expected = Array.from({ length: Number(count) - 8 }, (_, index) => index + 9);
    expect(rest.map((event) => event.sequence)).toEqual(expected);
    expect(restOverWs.map((event) => event.sequence)).toEqual(expected);
  });

  it('refuses an afterEventId of another run and an invisible run', async () => {
    const [runA, runB] = [await queueRun(app, author), await queueRun(app, author)];
    await waitForRun(app.deps.db, localId(runA));
    const eventOfA = await app.gql(
      `query($id: ID!) { node(id: $id) { ... on PipelineRun { events(first: 1) { edges { node { id } } } } } }`,
      { id: runA },
      { token: author.token },
    );
    const foreignEvent = eventOfA.data!.node.events.edges[0].node.id;
    const url = `http://127.0.0.1:${http.port}/graphql`;
    const [wrong] = await take(
      sseSubscribe(
        url,
        runSubscription,
        { id: runB, after: foreignEvent },
        { token: author.token },
      ),
      1,
    );
    expect(wrong?.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // The posts are drafts: an anonymous subscriber may not even learn the run exists.
    const [hidden] = await take(sseSubscribe(url, runSubscription, { id: runB }), 1);
    expect(hidden?.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('tags SSE events with id: and resumes an EventSource reconnect from Last-Event-ID', async () => {
    const runId = await queueRun(app, author);
    await waitForRun(app.deps.db, localId(runId));
    const query = `subscription Resume($id: ID!, $afterEventId: ID) {
      pipelineRun(id: $id, afterEventId: $afterEventId) { id sequence }
    }`;
    const url = `http://127.0.0.1:${http.port}/graphql?${new URLSearchParams({
      query,
      variables: JSON.stringify({ id: runId }),
      extensions: '{}',
    })}`;
    const read = async (headers: Record<string, string>) => {
      const response = await fetch(url, {
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${author.token}`,
          ...headers,
        },
      });
      const text = await response.text();
      return text
        .split('\n\n')
        .filter((block) => block.includes('event: next'))
        .map((block) => ({
          id: /^id: (.*)$/m.exec(block)?.[1],
          event: JSON.parse(/^data: (.*)$/m.exec(block)![1]!).data.pipelineRun as {
            id: string;
            sequence: number;
          },
        }));
    };
    const all = await read({});
    expect(all.length).toBeGreaterThan(10);
    for (const { id, event } of all) expect(id).toBe(event.id);
    const resumed = await read({ 'last-event-id': all[9]!.id! });
    expect(resumed.map(({ event }) => event.sequence)).toEqual(
      all.slice(10).map(({ event }) => event.sequence),
    );
  });

  it('sends SSE with the headers proxies need', async () => {
    const response = await fetch(`http://127.0.0.1:${http.port}/graphql`, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'subscription { postStatusChanged { status } }' }),
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    await response.body?.cancel();
  });
});
