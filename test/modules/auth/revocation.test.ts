import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { type HttpServer, httpOptions, startHttpServer } from '../../../src/http.ts';
import { createLogger } from '../../../src/infra/logger.ts';
import { insertToken } from '../../../src/modules/auth/auth.repository.ts';
import { hashToken } from '../../../src/modules/auth/token.ts';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId } from '../../helpers/factories.ts';
import { redisUrl } from '../../helpers/services.ts';

type LogLine = Record<string, any> & { level: number; msg: string };
const ERROR = 50;

/** Two API instances over one database and one Redis namespace, as behind a load balancer. */
const instances: { app: TestApp; http: HttpServer; url: string; wsUrl: string }[] = [];
const logged: LogLine[] = [];
let redis: Redis;
let consoleErrors: ReturnType<typeof vi.spyOn>;

const subscription = `subscription($author: ID) {
  postStatusChanged(authorId: $author) { status post { id title } }
}`;

beforeAll(async () => {
  const logger = createLogger(
    { LOG_LEVEL: 'warn' },
    { write: (line: string) => logged.push(JSON.parse(line) as LogLine) },
  );
  const env = { REDIS_URL: redisUrl, RESPONSE_CACHE: 'off', RATE_LIMIT_MUTATIONS: '10000' };
  const first = await startTestApp(env, undefined, logger);
  const second = await startTestApp(env, first, logger);
  for (const app of [first, second]) {
    const http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
    instances.push({
      app,
      http,
      url: `http://127.0.0.1:${http.port}/graphql`,
      wsUrl: `ws://127.0.0.1:${http.port}/graphql`,
    });
  }
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  redis?.disconnect();
  for (const { http } of instances) await http.close();
  for (const { app } of [...instances].reverse()) await app.close();
});

beforeEach(() => {
  logged.length = 0;
  // graphql-ws reports a throwing hook on the console, with its stack, before closing with 4500.
  consoleErrors = vi.spyOn(console, 'error');
});

afterEach(() => {
  consoleErrors.mockRestore();
});

const app = () => instances[0]!.app;
const channel = (name: string) => `${app().deps.config.REDIS_PREFIX}${name}`;

async function numsub(name: string): Promise<number> {
  const [, count] = (await redis.pubsub('NUMSUB', channel(name))) as [string, number];
  return Number(count);
}

async function waitUntil(condition: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await condition()); ) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Received {
  at: number;
  data?: any;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** A raw SSE stream that records every `next` with its arrival time, and when it ended. */
function openSse(url: string, token: string, variables: Record<string, unknown>) {
  const received: Received[] = [];
  const stream = { received, endedAt: undefined as number | undefined, abort: () => {} };
  const controller = new AbortController();
  stream.abort = () => controller.abort();
  const done = (async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query: subscription, variables }),
      signal: controller.signal,
    });
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (block.includes('event: next') && data)
            received.push({ at: Date.now(), ...JSON.parse(data) });
        }
      }
    } catch {
      // Aborted, or cut off when the server shuts down: the stream ended all the same.
    }
    stream.endedAt = Date.now();
  })();
  return Object.assign(stream, { done });
}

/** A graphql-ws connection past connection_ack that records every message and its close. */
async function openWs(url: string, token: string) {
  const socket = new WebSocket(url, 'graphql-transport-ws');
  await once(socket, 'open');
  socket.send(
    JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }),
  );
  const [ack] = await once(socket, 'message');
  expect(JSON.parse(String(ack))).toEqual({ type: 'connection_ack' });
  const received: (Received & { id?: string; type: string; payload?: any })[] = [];
  const connection = {
    socket,
    received,
    closed: undefined as { code: number; at: number } | undefined,
    subscribe(id: string, variables: Record<string, unknown>) {
      socket.send(
        JSON.stringify({ id, type: 'subscribe', payload: { query: subscription, variables } }),
      );
    },
  };
  socket.on('message', (raw) => {
    const message = JSON.parse(String(raw));
    // `data` and `errors` of a `next` at the top, as an SSE event has them.
    received.push({
      at: Date.now(),
      ...message,
      ...(message.type === 'next' ? message.payload : {}),
    });
  });
  socket.on('close', (code) => {
    connection.closed = { code, at: Date.now() };
  });
  return connection;
}

async function setStatus(token: string, postId: string, status: string) {
  const response = await app().gql(
    'mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { status } } }',
    { input: { id: globalId('Post', postId), status } },
    { token },
  );
  expect(response.errors).toBeUndefined();
}

/** The user's token row id (the factories insert one token per user). */
async function tokenId(token: string): Promise<string> {
  const row = await app()
    .deps.db.selectFrom('api_tokens')
    .select('id')
    .where('token_hash', '=', hashToken(token))
    .executeTakeFirstOrThrow();
  return globalId('ApiToken', row.id);
}

/** A user with a private draft, a token for the streams and a second token to keep working. */
async function authorWithDraft() {
  const author = await createUser(app().deps.db, 'AUTHOR');
  const { token: other } = await insertToken(app().deps.db, author.id, 'other');
  const [draft] = await createPosts(app().deps.db, [{ authorId: author.id, status: 'DRAFT' }]);
  return { author, other, draftId: draft!.id };
}

const dataEvents = (received: Received[]) => received.filter((event) => event.data);
const errorsLogged = () => logged.filter((line) => line.level >= ERROR);

describe('revokeApiToken ends the token’s streams on every instance', () => {
  it('ends SSE and graphql-ws streams on both instances within a second, and delivers nothing after', async () => {
    const { author, other, draftId } = await authorWithDraft();
    const variables = { author: author.globalId };
    const sse = instances.map(({ url }) => openSse(url, author.token, variables));
    const ws = await Promise.all(instances.map(({ wsUrl }) => openWs(wsUrl, author.token)));
    for (const connection of ws) connection.subscribe('1', variables);
    // Each instance holds one Redis subscription for the channel, whatever its streams.
    await waitUntil(async () => (await numsub('postStatusChanged')) === 2);
    await waitUntil(async () => (await numsub('viewerChanged')) === 2);

    // Live before the revocation: every stream sees the author's own draft change.
    await setStatus(other, draftId, 'ARCHIVED');
    const streams = [...sse.map((s) => s.received), ...ws.map((c) => c.received)];
    await waitUntil(() => streams.every((received) => dataEvents(received).length === 1));

    // Compared by position, not time: an event can arrive in the same millisecond.
    const before = streams.map((received) => received.length);
    const revokedAt = Date.now();
    const revoked = await app().gql(
      'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { revokedAt } } }',
      { id: await tokenId(author.token) },
      { token: other },
    );
    expect(revoked.errors).toBeUndefined();
    await waitUntil(
      () => sse.every((s) => s.endedAt !== undefined) && ws.every((c) => c.closed !== undefined),
    );
    for (const s of sse) expect(s.endedAt! - revokedAt).toBeLessThan(1000);
    for (const c of ws) {
      expect(c.closed!.code).toBe(4403);
      expect(c.closed!.at - revokedAt).toBeLessThan(1000);
    }

    // The draft changes again after the revocation: no stream of the revoked token may see it.
    await setStatus(other, draftId, 'DRAFT');
    await sleep(300);
    for (const [index, received] of streams.entries()) {
      expect(dataEvents(received.slice(before[index]))).toEqual([]);
    }
    // SSE says why it ended.
    for (const s of sse) {
      expect(s.received.at(-1)?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }

    // Nothing holds the channel once the streams are gone.
    await waitUntil(async () => (await numsub('postStatusChanged')) === 0, 1000);
    expect(consoleErrors).not.toHaveBeenCalled();
    expect(errorsLogged()).toEqual([]);
  });

  it('refuses the revoked token everywhere afterwards: HTTP 401, SSE UNAUTHENTICATED, graphql-ws 4403', async () => {
    const { author, other } = await authorWithDraft();
    await app().gql(
      'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { id } } }',
      { id: await tokenId(author.token) },
      { token: other },
    );
    for (const { url, wsUrl } of instances) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${author.token}` },
        body: JSON.stringify({ query: '{ viewer { id } }' }),
      });
      expect(response.status).toBe(401);
      const sse = openSse(url, author.token, {});
      await sse.done;
      expect(dataEvents(sse.received)).toEqual([]);
      expect(sse.received[0]?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

      const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
      await once(socket, 'open');
      socket.send(
        JSON.stringify({
          type: 'connection_init',
          payload: { authorization: `Bearer ${author.token}` },
        }),
      );
      const [code] = (await once(socket, 'close')) as [number];
      expect(code).toBe(4403);
    }
  });
});

describe('when the signal is lost (token revoked in the database only)', () => {
  async function revokeInDatabase(token: string) {
    await app()
      .deps.db.updateTable('api_tokens')
      .set({ revoked_at: new Date().toISOString() })
      .where('token_hash', '=', hashToken(token))
      .execute();
  }

  it('delivers no later event: the stream checks its token before each one and ends', async () => {
    const { author, other, draftId } = await authorWithDraft();
    const variables = { author: author.globalId };
    const sse = openSse(instances[1]!.url, author.token, variables);
    const ws = await openWs(instances[0]!.wsUrl, author.token);
    ws.subscribe('1', variables);
    await waitUntil(async () => (await numsub('postStatusChanged')) === 2);

    await revokeInDatabase(author.token);
    const revokedAt = Date.now();
    await setStatus(other, draftId, 'ARCHIVED');
    await waitUntil(() => sse.endedAt !== undefined && ws.closed !== undefined);
    expect(dataEvents(sse.received)).toEqual([]);
    expect(sse.received.at(-1)?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(dataEvents(ws.received)).toEqual([]);
    expect(ws.closed!.code).toBe(4403);
    expect(ws.closed!.at - revokedAt).toBeLessThan(1000);
    await waitUntil(async () => (await numsub('postStatusChanged')) === 0, 1000);
    expect(consoleErrors).not.toHaveBeenCalled();
    expect(errorsLogged()).toEqual([]);
  });

  it('closes a connection with 4403 at its next subscribe, without a stack trace', async () => {
    const { author } = await authorWithDraft();
    const ws = await openWs(instances[1]!.wsUrl, author.token);
    await revokeInDatabase(author.token);
    ws.subscribe('1', {});
    await waitUntil(() => ws.closed !== undefined);
    expect(ws.closed!.code).toBe(4403);
    expect(dataEvents(ws.received)).toEqual([]);
    expect(consoleErrors).not.toHaveBeenCalled();
    expect(errorsLogged()).toEqual([]);
  });
});

describe('setUserRole ends the user’s streams on every instance', () => {
  it('ends them within a second; a new subscribe on the same connection sees the new role', async () => {
    const editor = await createUser(app().deps.db, 'EDITOR');
    const admin = await createUser(app().deps.db, 'ADMIN');
    const { other, draftId } = await authorWithDraft();
    const sse = openSse(instances[1]!.url, editor.token, {});
    const ws = await openWs(instances[0]!.wsUrl, editor.token);
    ws.subscribe('1', {});
    await waitUntil(async () => (await numsub('postStatusChanged')) === 2);
    await waitUntil(async () => (await numsub('viewerChanged')) === 2);
    // As an editor, they see another author's draft change.
    await setStatus(other, draftId, 'ARCHIVED');
    await waitUntil(() => dataEvents(sse.received).length === 1);
    await waitUntil(() => dataEvents(ws.received).length === 1);

    const before = ws.received.length;
    const changedAt = Date.now();
    const demoted = await app().gql(
      'mutation($user: ID!) { setUserRole(input: { userId: $user, role: AUTHOR }) { user { role } } }',
      { user: editor.globalId },
      { token: admin.token },
    );
    expect(demoted.data?.setUserRole.user.role).toBe('AUTHOR');
    await waitUntil(() => sse.endedAt !== undefined && ws.received.at(-1)?.type === 'complete');
    expect(sse.endedAt! - changedAt).toBeLessThan(1000);
    expect(sse.received.at(-1)?.errors?.[0]?.extensions?.code).toBe('VIEWER_CHANGED');
    const ended = ws.received.slice(before);
    expect((ended.at(-1)?.at ?? Number.POSITIVE_INFINITY) - changedAt).toBeLessThan(1000);
    expect(ended.find((message) => message.type === 'next')?.errors?.[0]?.extensions?.code).toBe(
      'VIEWER_CHANGED',
    );
    // The token is still good: the connection stays, and its next subscribe has the new role.
    expect(ws.closed).toBeUndefined();
    await waitUntil(async () => (await numsub('postStatusChanged')) === 0, 1000);
    ws.subscribe('2', {});
    const [own] = await createPosts(app().deps.db, [{ authorId: editor.id, status: 'DRAFT' }]);
    await waitUntil(async () => (await numsub('postStatusChanged')) === 1);
    await setStatus(other, draftId, 'DRAFT');
    await setStatus(editor.token, own!.id, 'ARCHIVED');
    await waitUntil(() => ws.received.some((message) => message.id === '2'));
    const second = ws.received.filter((message) => message.id === '2');
    expect(second.map((message) => message.data?.postStatusChanged.post.id)).toEqual([
      globalId('Post', own!.id),
    ]);
    const first = ws.received.filter((message) => message.id === '1');
    expect(dataEvents(first.slice(1))).toEqual([]);
    ws.socket.close();
    await waitUntil(async () => (await numsub('postStatusChanged')) === 0, 1000);
    expect(consoleErrors).not.toHaveBeenCalled();
    expect(errorsLogged()).toEqual([]);
  });
});
