import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { adminDatabaseUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

let app: TestApp;
let http: HttpServer;
let user: TestUser;
let wsUrl: string;

beforeAll(async () => {
  app = await startTestApp({ WS_INIT_TIMEOUT_MS: '300', WS_MAX_SUBSCRIPTIONS: '2' });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  wsUrl = `ws://127.0.0.1:${http.port}/graphql`;
  user = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

async function closeCode(socket: WebSocket): Promise<number> {
  const [code] = (await once(socket, 'close')) as [number];
  return code;
}

describe('graphql-ws', () => {
  it('closes a connection that never sends connection_init after the timeout (4408)', async () => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    const started = Date.now();
    expect(await closeCode(socket)).toBe(4408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('closes a connection whose token is unknown with 4403', async () => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(
      JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer qr_forged' } }),
    );
    expect(await closeCode(socket)).toBe(4403);
  });

  it('closes on a malformed message (4400)', async () => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send('{"type":"nonsense"}');
    expect(await closeCode(socket)).toBe(4400);
  });

  it('caps subscriptions per connection', async () => {
    const subscription = 'subscription { postStatusChanged { status } }';
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(
      JSON.stringify({
        type: 'connection_init',
        payload: { authorization: `Bearer ${user.token}` },
      }),
    );
    await once(socket, 'message');
    const replies: { id: string; type: string; payload?: { extensions?: { code?: string } }[] }[] =
      [];
    socket.on('message', (data) => replies.push(JSON.parse(String(data))));
    for (const id of ['1', '2', '3'])
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: subscription } }));
    for (let wait = 0; wait < 50 && replies.length === 0; wait += 1)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(replies).toEqual([
      {
        id: '3',
        type: 'error',
        payload: [expect.objectContaining({ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } })],
      },
    ]);
    socket.close();
  });

  it('authenticates at connection_init: the author sees their draft change, anonymous does not', async () => {
    const editor = await createUser(app.deps.db, 'EDITOR');
    const [draft, other] = await createPosts(app.deps.db, [
      { authorId: user.id, status: 'DRAFT' },
      { authorId: editor.id, status: 'DRAFT' },
    ]);
    const subscription = 'subscription { postStatusChanged { status post { id } } }';
    const asAuthor = wsSubscribe(wsUrl, subscription, {}, { token: user.token });
    const anonymous = wsSubscribe(wsUrl, subscription, {});
    const nextOf = async (stream: typeof asAuthor) =>
      (await stream.next()).value!.data!.postStatusChanged;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const update = 'mutation($input: UpdatePostInput!) { updatePost(input: $input) { status } }';
    await app.gql(
      update,
      { input: { id: globalId('Post', draft!.id), status: 'REVIEW' } },
      { token: user.token },
    );
    const seenByAuthor = [await nextOf(asAuthor)];
    await app.gql(
      update,
      { input: { id: globalId('Post', other!.id), status: 'PUBLISHED' } },
      { token: editor.token },
    );
    seenByAuthor.push(await nextOf(asAuthor));
    // The draft's REVIEW change was invisible to anonymous readers; this publication is not.
    const seenByAnonymous = [await nextOf(anonymous)];
    await Promise.all([asAuthor.dispose(), anonymous.dispose()]);
    expect(seenByAuthor).toEqual([
      { status: 'REVIEW', post: { id: globalId('Post', draft!.id) } },
      { status: 'PUBLISHED', post: { id: globalId('Post', other!.id) } },
    ]);
    expect(seenByAnonymous).toEqual([
      { status: 'PUBLISHED', post: { id: globalId('Post', other!.id) } },
    ]);
  });
});

describe('operations endpoints', () => {
  it('answers /health without I/O and exposes the listed metrics after traffic', async () => {
    const base = `http://127.0.0.1:${http.port}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'query Feed { posts(first: 2) { edges { cursor } } }',
        operationName: 'Feed',
      }),
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const series of [
      'quire_graphql_request_duration_seconds_bucket{le="0.005",operation="Feed",status="200"}',
      'quire_sql_queries_per_request_count',
      'quire_pg_pool_connections{state="idle"}',
      'quire_pg_pool_connections{state="waiting"}',
      'quire_cache_hits_total',
      'quire_rate_limit_rejections_total',
      'quire_active_subscriptions',
      'quire_pipeline_queue_depth',
      'quire_pipeline_step_duration_seconds',
      'quire_sql_statements_total',
    ]) {
      expect(metrics).toContain(series);
    }
  });

  it('turns /ready unready while Postgres is unreachable and ready again after', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(adminDatabaseUrl).port || 5432));
    await proxy.start();
    const proxied = new URL(app.database.url);
    proxied.port = String(proxy.port);
    const instance = await startTestApp(
      { DATABASE_URL: proxied.toString(), DB_CONNECT_TIMEOUT_MS: '500' },
      app,
    );
    const ready = async () => {
      const response = await instance.yoga.fetch('http://quire.test/ready');
      return { status: response.status, body: await response.json() };
    };
    try {
      expect(await ready()).toEqual({
        status: 200,
        body: { status: 'ready', checks: { postgres: true, migrations: true, redis: true } },
      });
      await proxy.stop();
      const down = await ready();
      expect(down.status).toBe(503);
      expect(down.body.checks.postgres).toBe(false);
      await proxy.start();
      let back = await ready();
      for (let attempt = 0; attempt < 20 && back.status !== 200; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        back = await ready();
      }
      expect(back.status).toBe(200);
    } finally {
      await instance.close();
      await proxy.stop();
    }
  });
});
