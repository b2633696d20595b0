import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun } from '../helpers/pipeline.ts';
import { redisUrl, waitForRedisSubscribers } from '../helpers/services.ts';

// Every way a client can leave must give back what its subscription holds on the server: the
// Redis channel (PUBSUB NUMSUB back to 0) and the active-subscriptions gauge, within a second and
// without any further event having to arrive.

let app: TestApp;
let http: HttpServer;
let author: TestUser;
let redis: Redis;
let url: string;

const statusQuery = 'subscription { postStatusChanged { status } }';
const runQuery = 'subscription($id: ID!) { pipelineRun(id: $id) { id sequence type } }';
const json = (value: unknown) => JSON.stringify(value);

beforeAll(async () => {
  app = await startTestApp({ REDIS_URL: redisUrl, WS_MAX_SUBSCRIPTIONS: '30' });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
  author = await createUser(app.deps.db, 'AUTHOR');
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  redis?.disconnect();
  await http?.close();
  await app?.close();
});

const statusChannel = () => `${app.deps.config.REDIS_PREFIX}postStatusChanged`;
const runChannel = (runId: string) =>
  `${app.deps.config.REDIS_PREFIX}pipelineRun:${localId(runId)}`;

async function subscribers(channel: string): Promise<number> {
  const [, count] = (await redis.pubsub('NUMSUB', channel)) as [string, number | string];
  return Number(count);
}

async function gauge(): Promise<number> {
  return (await app.deps.metrics.activeSubscriptions.get()).values[0]?.value ?? 0;
}

/** Whether `condition` holds within `ms`, polled every 10 ms. */
async function within(ms: number, condition: () => Promise<boolean>): Promise<boolean> {
  for (const deadline = Date.now() + ms; ; ) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Released: nobody on the channel and the gauge back where it was, within a second. */
async function expectReleased(channel: string, gaugeBefore: number): Promise<void> {
  const released = await within(1000, async () => (await subscribers(channel)) === 0);
  expect(released, `${channel} has no subscriber within 1 s`).toBe(true);
  expect(await within(1000, async () => (await gauge()) === gaugeBefore)).toBe(true);
}

/** An SSE POST whose response has started (the subscription exists on the server). */
async function openSse(query: string, variables: Record<string, unknown> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      accept: 'text/event-stream',
      'content-type': 'application/json',
      authorization: `Bearer ${author.token}`,
    },
    body: json({ query, variables }),
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  // Keeps reading (as a browser does) so the abort is the only way the stream ends.
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      // The abort.
    }
  })();
  return { abort: () => controller.abort(), received: () => text };
}

/** A graphql-ws connection past connection_ack, collecting what the server sends. */
async function openSocket() {
  const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
  await once(socket, 'open');
  const messages: any[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  socket.send(
    json({ type: 'connection_init', payload: { authorization: `Bearer ${author.token}` } }),
  );
  expect(await within(2000, async () => messages.length > 0)).toBe(true);
  expect(messages[0]).toEqual({ type: 'connection_ack' });
  const subscribe = (id: string, query: string, variables: Record<string, unknown> = {}) =>
    socket.send(json({ id, type: 'subscribe', payload: { query, variables } }));
  return { socket, messages, subscribe };
}

describe('a subscriber that leaves is released at once', () => {
  it('SSE: ten aborted postStatusChanged streams, no event and a filtered-out one', async () => {
    const before = await gauge();
    const anonymous = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const controller = new AbortController();
        const response = await fetch(url, {
          method: 'POST',
          headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
          body: json({ query: statusQuery }),
          signal: controller.signal,
        });
        response.body?.pipeTo(new WritableStream()).catch(() => {});
        return controller;
      }),
    );
    await waitForRedisSubscribers([statusChannel()]);
    expect(await within(1000, async () => (await gauge()) === before + 10)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const controller of anonymous) controller.abort();
    // A change an anonymous viewer may not see (a draft): it must not be what releases them.
    const [draft] = await createPosts(app.deps.db, [{ authorId: author.id, status: 'DRAFT' }]);
    app.deps.pubsub.publish('postStatusChanged', {
      postId: draft!.id,
      authorId: author.id,
      status: 'DRAFT',
    });
    await expectReleased(statusChannel(), before);
  });

  it('SSE: an aborted pipelineRun stream of a QUEUED run', async () => {
    const runId = await queueRun(app, author);
    const before = await gauge();
    const stream = await openSse(runQuery, { id: runId });
    // Past the replay (run.queued), waiting for a live event that will not come: no worker runs.
    expect(await within(2000, async () => stream.received().includes('run.queued'))).toBe(true);
    expect(await subscribers(runChannel(runId))).toBe(1);
    stream.abort();
    await expectReleased(runChannel(runId), before);
  });

  it('graphql-ws: complete, with the socket left open', async () => {
    const runId = await queueRun(app, author);
    const before = await gauge();
    const { socket, subscribe } = await openSocket();
    subscribe('status', statusQuery);
    subscribe('run', runQuery, { id: runId });
    await waitForRedisSubscribers([statusChannel(), runChannel(runId)]);
    expect(await gauge()).toBe(before + 2);
    socket.send(json({ id: 'status', type: 'complete' }));
    socket.send(json({ id: 'run', type: 'complete' }));
    await expectReleased(statusChannel(), before);
    await expectReleased(runChannel(runId), before);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
  });

  it('graphql-ws: the socket closes', async () => {
    const runId = await queueRun(app, author);
    const before = await gauge();
    const { socket, subscribe } = await openSocket();
    subscribe('status', statusQuery);
    subscribe('run', runQuery, { id: runId });
    await waitForRedisSubscribers([statusChannel(), runChannel(runId)]);
    socket.close();
    await expectReleased(statusChannel(), before);
    await expectReleased(runChannel(runId), before);
  });

  it('graphql-ws: the socket closes while the subscribes are still pending', async () => {
    const runId = await queueRun(app, author);
    const before = await gauge();
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const { socket, subscribe } = await openSocket();
      subscribe('status', statusQuery);
      subscribe('run', runQuery, { id: runId });
      // A little later each time: the close lands at different points of the subscribe.
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, attempt * 3));
      socket.terminate();
    }
    await expectReleased(statusChannel(), before);
    await expectReleased(runChannel(runId), before);
  });

  it('graphql-ws: 25 subscriptions that fail at their start leave the gauge where it was', async () => {
    const other = await createUser(app.deps.db, 'AUTHOR');
    const hiddenRun = await queueRun(app, other);
    const before = await gauge();
    const { socket, messages, subscribe } = await openSocket();
    for (let index = 0; index < 25; index += 1)
      subscribe(`hidden-${index}`, runQuery, { id: hiddenRun });
    // Refused before it started: an error result (`next` with errors, then `complete`) or `error`.
    const codeOf = (message: any) =>
      (message.type === 'error' ? message.payload : message.payload?.errors)?.[0]?.extensions?.code;
    const ended = () => messages.filter((message) => ['complete', 'error'].includes(message.type));
    expect(await within(5000, async () => ended().length === 25)).toBe(true);
    const refusals = messages.filter((message) => codeOf(message) !== undefined);
    expect(refusals).toHaveLength(25);
    expect(refusals.every((message) => codeOf(message) === 'NOT_FOUND')).toBe(true);
    expect(await gauge()).toBe(before);
    expect(await subscribers(runChannel(hiddenRun))).toBe(0);
    socket.close();
  });
});
