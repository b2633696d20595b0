import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type SseEvent, type StreamedResult, sseEvents, wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun } from '../helpers/pipeline.ts';
import { redisUrl } from '../helpers/services.ts';

// An event is executed once per (document, variables, viewer scope) and that result is sent to
// every subscriber of the key, over SSE and graphql-ws alike. What must not happen: a viewer
// receiving a result computed for another one (a draft's title), or for other variables.

let app: TestApp;
let http: HttpServer;
let worker: PipelineWorker | undefined;
let alice: TestUser;
let bob: TestUser;
let editor: TestUser;

beforeAll(async () => {
  app = await startTestApp({
    REDIS_URL: redisUrl,
    PIPELINE_STEP_DELAY_MS: '15',
    PIPELINE_POLL_MS: '50',
  });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  alice = await createUser(app.deps.db, 'AUTHOR', 'Alice');
  bob = await createUser(app.deps.db, 'AUTHOR', 'Bob');
  editor = await createUser(app.deps.db, 'EDITOR', 'Eve');
});

afterAll(async () => {
  await worker?.stop();
  await http?.close();
  await app?.close();
});

const url = () => `http://127.0.0.1:${http.port}/graphql`;

/** The executed and shared subscription event results, as /metrics reports them. */
async function eventResults(): Promise<{ executed: number; shared: number }> {
  const text = await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
  const read = (outcome: string) =>
    Number(
      new RegExp(
        `^quire_subscription_event_results_total\\{outcome="${outcome}"\\} (\\d+)$`,
        'm',
      ).exec(text)?.[1] ?? 0,
    );
  return { executed: read('executed'), shared: read('shared') };
}

interface Subscriber {
  name: string;
  /** Everything received so far, in order; SSE events keep their `id:` line. */
  received: SseEvent[];
  close(): Promise<void>;
}

/** A subscriber over `transport` that collects what it receives until closed. */
function subscribe(
  name: string,
  transport: 'sse' | 'ws',
  query: string,
  variables: Record<string, unknown>,
  token?: string,
): Subscriber {
  const received: SseEvent[] = [];
  const abort = new AbortController();
  let close: () => Promise<void>;
  let done: Promise<void>;
  if (transport === 'sse') {
    done = (async () => {
      for await (const event of sseEvents(url(), query, variables, { token, signal: abort.signal }))
        received.push(event);
    })();
    close = async () => {
      abort.abort();
      await done;
    };
  } else {
    const ws = wsSubscribe(url().replace('http', 'ws'), query, variables, { token });
    done = (async () => {
      for await (const result of ws) received.push({ result });
    })();
    close = async () => {
      await ws.dispose();
      await done.catch(() => {});
    };
  }
  return { name, received, close };
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('postStatusChanged fan-out', () => {
  const changes = /* GraphQL */ `
    subscription Changes($author: ID) {
      postStatusChanged(authorId: $author) { status post { id title status } }
    }
  `;

  it('executes each event once per document, variables and viewer, and leaks nothing across them', async () => {
    const [draft, alicePublished, bobPublished, unpublished] = await createPosts(app.deps.db, [
      { authorId: alice.id, title: 'Alice secret draft', status: 'DRAFT' },
      { authorId: alice.id, title: 'Alice public post' },
      { authorId: bob.id, title: 'Bob public post' },
      { authorId: alice.id, title: 'Alice post to unpublish' },
    ]);
    const anyone = {};
    const byAlice = { author: alice.globalId };
    const byBob = { author: bob.globalId };
    // Six keys: alice/anyone, bob/anyone, anonymous/anyone, editor/anyone, alice/byAlice, alice/byBob.
    const subscribers = [
      subscribe('alice sse 1', 'sse', changes, anyone, alice.token),
      subscribe('alice sse 2', 'sse', changes, anyone, alice.token),
      subscribe('alice ws 1', 'ws', changes, anyone, alice.token),
      subscribe('alice ws 2', 'ws', changes, anyone, alice.token),
      subscribe('bob sse', 'sse', changes, anyone, bob.token),
      subscribe('bob ws', 'ws', changes, anyone, bob.token),
      subscribe('anonymous sse', 'sse', changes, anyone),
      subscribe('anonymous ws', 'ws', changes, anyone),
      subscribe('editor sse', 'sse', changes, anyone, editor.token),
      subscribe('alice byAlice sse', 'sse', changes, byAlice, alice.token),
      subscribe('alice byAlice ws', 'ws', changes, byAlice, alice.token),
      subscribe('alice byBob sse', 'sse', changes, byBob, alice.token),
    ];
    const [aliceSse1, aliceSse2, aliceWs1, aliceWs2, bobSse, bobWs, anonSse, anonWs, editorSse] =
      subscribers;
    const [aliceByAliceSse, aliceByAliceWs, aliceByBobSse] = subscribers.slice(9);
    const seeingDrafts = [
      aliceSse1,
      aliceSse2,
      aliceWs1,
      aliceWs2,
      editorSse,
      aliceByAliceSse,
      aliceByAliceWs,
    ];
    const notSeeingDrafts = [bobSse, bobWs, anonSse, anonWs];

    const publish = (postId: string, authorId: string, status: 'DRAFT' | 'PUBLISHED') =>
      app.deps.pubsub.publish('postStatusChanged', { postId, authorId, status });
    // Every subscriber receives the last of these two: byAlice the first, byBob the second.
    const lastProbe = (subscriber: Subscriber) =>
      subscriber === aliceByAliceSse || subscriber === aliceByAliceWs
        ? alicePublished!
        : bobPublished!;
    const probeCount = (subscriber: Subscriber) =>
      subscriber === aliceByAliceSse ||
      subscriber === aliceByAliceWs ||
      subscriber === aliceByBobSse
        ? 1
        : 2;
    const postIdOf = (event: SseEvent) =>
      event.result.data?.postStatusChanged.post?.id as string | undefined;
    /** Probes every subscriber, and waits until each has everything published before. */
    const barrier = async () => {
      const before = subscribers.map((subscriber) => subscriber.received.length);
      publish(alicePublished!.id, alice.id, 'PUBLISHED');
      publish(bobPublished!.id, bob.id, 'PUBLISHED');
      await until(
        () =>
          subscribers.every(
            (subscriber, index) =>
              subscriber.received.length >= before[index]! + probeCount(subscriber) &&
              postIdOf(subscriber.received.at(-1)!) === globalId('Post', lastProbe(subscriber).id),
          ),
        'the probes',
        2000,
      );
    };
    try {
      // Subscribing completes when each stream's first `next` attached it: probe until all are.
      for (let attempt = 0; ; attempt += 1) {
        try {
          await barrier();
          break;
        } catch (error) {
          if (attempt === 10) throw error;
        }
      }
      const start = subscribers.map((subscriber) => subscriber.received.length);
      const before = await eventResults();

      // A PUBLISHED message for a post that is a draft by now (it was unpublished meanwhile):
      // everyone receives it, but only Alice and the editor may see the post.
      publish(draft!.id, alice.id, 'PUBLISHED');
      // A real edit: the editor unpublishes Alice's post; only viewers of drafts hear of it.
      const edit = await app.gql(
        'mutation Unpublish($id: ID!) { updatePost(input: { id: $id, status: DRAFT }) { post { status } } }',
        { id: globalId('Post', unpublished!.id) },
        { token: editor.token },
      );
      expect(edit.errors).toBeUndefined();
      await barrier();
      const after = await eventResults();

      const between = (subscriber: Subscriber) =>
        subscriber.received
          .slice(start[subscribers.indexOf(subscriber)], -probeCount(subscriber))
          .map((event) => event.result);
      const draftSeen: StreamedResult = {
        data: {
          postStatusChanged: {
            status: 'PUBLISHED',
            post: { id: globalId('Post', draft!.id), title: 'Alice secret draft', status: 'DRAFT' },
          },
        },
      };
      const draftHidden: StreamedResult = {
        data: { postStatusChanged: { status: 'PUBLISHED', post: null } },
      };
      const unpublishedSeen: StreamedResult = {
        data: {
          postStatusChanged: {
            status: 'DRAFT',
            post: {
              id: globalId('Post', unpublished!.id),
              title: 'Alice post to unpublish',
              status: 'DRAFT',
            },
          },
        },
      };
      for (const subscriber of seeingDrafts)
        expect(between(subscriber!), subscriber!.name).toEqual([draftSeen, unpublishedSeen]);
      for (const subscriber of notSeeingDrafts)
        expect(between(subscriber!), subscriber!.name).toEqual([draftHidden]);
      expect(between(aliceByBobSse!), aliceByBobSse!.name).toEqual([]);
      // PostStatusChange has no id: no `id:` line.
      expect(aliceSse1!.received.every((event) => event.id === undefined)).toBe(true);

      // The draft: 11 receivers of 5 keys; the edit: 7 receivers of 3 keys; the probes: 11
      // receivers of 5 keys and 10 receivers of 5 keys.
      expect(after.executed - before.executed).toBe(5 + 3 + 10);
      expect(after.shared - before.shared).toBe(6 + 4 + 11);
    } finally {
      await Promise.all(subscribers.map((subscriber) => subscriber.close()));
    }
  });
});

describe('pipelineRun fan-out', () => {
  const runSubscription = /* GraphQL */ `
    subscription Run($id: ID!) { pipelineRun(id: $id) { id sequence type } }
  `;

  it('sends every subscriber of one run every event, each SSE event with its own id', async () => {
    const runId = await queueRun(app, alice);
    const variables = { id: runId };
    const subscribers = [
      subscribe('alice sse 1', 'sse', runSubscription, variables, alice.token),
      subscribe('alice sse 2', 'sse', runSubscription, variables, alice.token),
      subscribe('alice sse 3', 'sse', runSubscription, variables, alice.token),
      subscribe('alice ws 1', 'ws', runSubscription, variables, alice.token),
      subscribe('alice ws 2', 'ws', runSubscription, variables, alice.token),
      subscribe('editor sse', 'sse', runSubscription, variables, editor.token),
      subscribe('editor ws', 'ws', runSubscription, variables, editor.token),
    ];
    try {
      // Each stream replays the run's first event (queued) from the table; subscribed before a
      // worker exists, they share every later one, live.
      await until(
        () => subscribers.every((subscriber) => subscriber.received.length === 1),
        'the replayed first event',
      );
      const before = await eventResults();
      worker = new PipelineWorker(app.deps);
      await worker.start();
      const ended = (subscriber: Subscriber) =>
        subscriber.received.at(-1)?.result.data?.pipelineRun.type === 'run.succeeded';
      await until(() => subscribers.every(ended), 'the end of the run', 20_000);
      const after = await eventResults();

      const stored = await app.deps.db
        .selectFrom('pipeline_events')
        .select(['id', 'seq', 'type'])
        .where('run_id', '=', localId(runId))
        .orderBy('seq')
        .execute();
      expect(stored.length).toBeGreaterThan(20);
      const expected = stored.map((row) => ({
        id: globalId('PipelineEvent', row.id),
        sequence: row.seq,
        type: row.type,
      }));
      for (const subscriber of subscribers) {
        expect(
          subscriber.received.map((event) => event.result.data?.pipelineRun),
          subscriber.name,
        ).toEqual(expected);
        if (subscriber.name.includes('sse'))
          expect(subscriber.received.map((event) => event.id)).toEqual(expected.map((e) => e.id));
      }
      // Two viewer scopes: at least one execution per event and scope, and most results shared
      // (a stream that re-read the table after a skipped event executes its rows on its own).
      const executed = after.executed - before.executed;
      const handedOut = executed + after.shared - before.shared;
      expect(handedOut).toBe((stored.length - 1) * subscribers.length);
      expect(executed).toBeGreaterThanOrEqual((stored.length - 1) * 2);
      expect(executed).toBeLessThan(handedOut / 2);
    } finally {
      await Promise.all(subscribers.map((subscriber) => subscriber.close()));
    }
  });

  it('writes every SSE subscriber of a key the same bytes, framed as one event per chunk', async () => {
    const runId = await queueRun(app, alice);
    /** The raw body of an SSE subscription, read until the server ends it. */
    const raw = () => {
      let body = '';
      const ended = new Promise<string>((resolve, reject) => {
        const request = httpRequest(
          url(),
          {
            method: 'POST',
            headers: {
              accept: 'text/event-stream',
              'content-type': 'application/json',
              authorization: `Bearer ${alice.token}`,
            },
          },
          (response) => {
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              body += chunk;
            });
            response.on('end', () => resolve(body));
            response.on('error', reject);
          },
        );
        request.on('error', reject);
        request.end(JSON.stringify({ query: runSubscription, variables: { id: runId } }));
      });
      return { ended, body: () => body };
    };
    const streams = [raw(), raw(), raw()];
    await until(
      () => streams.every((stream) => stream.body().includes('event: next')),
      'the replayed first event',
    );
    const cancelled = await app.gql(
      'mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status } } }',
      { id: runId },
      { token: alice.token },
    );
    expect(cancelled.errors).toBeUndefined();
    // Keep-alive comments (`:`) come on each stream's own timer; the events must not differ.
    const bodies = (await Promise.all(streams.map((stream) => stream.ended))).map((body) =>
      body
        .split('\n\n')
        .filter((block) => block !== ':')
        .join('\n\n'),
    );
    const stored = await app.deps.db
      .selectFrom('pipeline_events')
      .select(['id', 'seq', 'type'])
      .where('run_id', '=', localId(runId))
      .orderBy('seq')
      .execute();
    const expected = `${stored
      .map((row) => {
        const id = globalId('PipelineEvent', row.id);
        const data = JSON.stringify({
          data: { pipelineRun: { id, sequence: row.seq, type: row.type } },
        });
        return `id: ${id}\nevent: next\ndata: ${data}\n\n`;
      })
      .join('')}event: complete\ndata:\n\n`;
    // The earlier test's worker may have run some steps before the cancel landed.
    expect(stored.at(-1)?.type).toMatch(/^run\.(cancelled|succeeded)$/);
    for (const body of bodies) expect(body).toBe(expected);
  });
});
