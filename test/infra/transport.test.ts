import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { sql } from 'kysely';
import pg from 'pg';
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

/** The value of one sample line (`name{labels} value`) in a Prometheus scrape. */
function sample(scrape: string, series: string, fallback?: number): number {
  const line = scrape.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  if (line === undefined && fallback !== undefined) return fallback;
  expect(line, `a sample line for ${series}`).toBeDefined();
  return Number(line!.slice(series.length + 1));
}

async function closeCode(socket: WebSocket): Promise<number> {
  const [code] = (await once(socket, 'close')) as [number];
  return code;
}

const json = (value: unknown) => JSON.stringify(value);

async function sqlStatements(): Promise<number> {
  return (await app.deps.metrics.sqlStatements.get()).values[0]?.value ?? 0;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let wait = 0; wait < 100 && !condition(); wait += 1)
    await new Promise((resolve) => setTimeout(resolve, 20));
}

/** A graphql-ws connection past connection_ack. */
async function initializedSocket(token: string): Promise<WebSocket> {
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  await once(socket, 'open');
  socket.send(json({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  const [ack] = await once(socket, 'message');
  expect(JSON.parse(String(ack))).toEqual({ type: 'connection_ack' });
  return socket;
}

function collectMessages(socket: WebSocket): any[] {
  const messages: unknown[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  return messages;
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

  it('answers a subscribe whose query does not parse with an error message, not a close', async () => {
    const socket = await initializedSocket(user.token);
    const replies = collectMessages(socket);
    const tooManyTokens = `subscription { postStatusChanged { ${'status '.repeat(6000)} } }`;
    socket.send(json({ id: '1', type: 'subscribe', payload: { query: 'subscription {' } }));
    socket.send(json({ id: '2', type: 'subscribe', payload: { query: tooManyTokens } }));
    await waitFor(() => replies.length >= 2);
    expect(replies.map(({ id, type, payload }) => [id, type, payload[0].extensions.code])).toEqual([
      ['1', 'error', 'GRAPHQL_PARSE_FAILED'],
      ['2', 'error', 'QUERY_TOO_COMPLEX'],
    ]);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
  });

  it('rejects a too-deep subscription from a signed-in client before any SQL', async () => {
    const socket = await initializedSocket(user.token);
    const replies = collectMessages(socket);
    const nest = (depth: number): string =>
      depth === 0 ? 'id' : `author { posts(first: 1) { edges { node { ${nest(depth - 1)} } } } }`;
    const before = await sqlStatements();
    socket.send(
      json({
        id: '1',
        type: 'subscribe',
        payload: { query: `subscription { postStatusChanged { post { ${nest(4)} } } }` },
      }),
    );
    await waitFor(() => replies.length >= 1);
    expect(replies[0]).toMatchObject({
      id: '1',
      type: 'error',
      payload: [{ extensions: { code: 'QUERY_TOO_COMPLEX', limit: 'depth' } }],
    });
    expect(await sqlStatements()).toBe(before);
    socket.close();
  });

  it('closes a connection that sends a message over MAX_BODY_BYTES with 1009', async () => {
    const socket = await initializedSocket(user.token);
    const query = `subscription { postStatusChanged { status } } # ${'x'.repeat(app.deps.config.MAX_BODY_BYTES)}`;
    socket.send(json({ id: '1', type: 'subscribe', payload: { query } }));
    expect(await closeCode(socket)).toBe(1009);
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
    const update =
      'mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { status } } }';
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

/** POSTs `parts` with Transfer-Encoding: chunked (no Content-Length) over the real port. */
async function postChunked(parts: Iterable<string>, token: string) {
  const request = httpRequest({
    host: '127.0.0.1',
    port: http.port,
    path: '/graphql',
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
      authorization: `Bearer ${token}`,
    },
  });
  // The server may answer and stop reading before the upload is over.
  request.on('error', () => {});
  const response = once(request, 'response') as Promise<[IncomingMessage]>;
  for (const part of parts) request.write(part);
  request.end();
  const [message] = await response;
  let body = '';
  for await (const part of message) body += part;
  return { status: message.statusCode, body: JSON.parse(body) };
}

describe('request bodies over a real port', () => {
  it('refuses a chunked body over the limit (no Content-Length) quickly and before any SQL', async () => {
    function* megabyteQuery() {
      yield '{"query":"{ viewer { id } }","extensions":{"padding":"';
      for (let sent = 0; sent <= 1_048_576; sent += 65_536) yield 'x'.repeat(65_536);
      yield '"}}';
    }
    const before = await sqlStatements();
    const started = performance.now();
    const response = await postChunked(megabyteQuery(), user.token);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(response.status).toBe(413);
    expect(response.body.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await sqlStatements()).toBe(before);
  });

  it('accepts a chunked body under the limit, also right after a refused one', async () => {
    const response = await postChunked(['{"query":"{ viewer', ' { id } }"}'], user.token);
    expect(response).toEqual({ status: 200, body: { data: { viewer: { id: user.globalId } } } });
  });
});

describe('errors clients see', () => {
  it('refuses an SSE subscription with an unknown token as UNAUTHENTICATED, inside an accepted stream', async () => {
    const response = await fetch(`http://127.0.0.1:${http.port}/graphql`, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: 'Bearer qr_forged',
      },
      body: JSON.stringify({ query: 'subscription { postStatusChanged { status } }' }),
    });
    // graphql-sse: errors before execution travel in a 200 stream (a 401 one is never read).
    expect(response.status).toBe(200);
    const events = (await response.text())
      .split('\n\n')
      .filter((block) => block.trim() !== '' && block.trim() !== ':');
    expect(events.map((block) => /^event: (.*)$/m.exec(block)?.[1])).toEqual(['next', 'complete']);
    const payload = JSON.parse(/^data: (.*)$/m.exec(events[0]!)![1]!);
    expect(payload).toEqual({
      errors: [{ message: 'Unknown or revoked token', extensions: { code: 'UNAUTHENTICATED' } }],
    });
  });

  it('masks an internal error in production: no stack, no SQL, no driver message', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(adminDatabaseUrl).port || 5432));
    await proxy.start();
    const proxied = new URL(app.database.url);
    proxied.port = String(proxy.port);
    const production = await startTestApp(
      { NODE_ENV: 'production', DATABASE_URL: proxied.toString(), DB_CONNECT_TIMEOUT_MS: '500' },
      app,
    );
    try {
      await proxy.stop();
      const response = await production.yoga.fetch('http://quire.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ posts(first: 1) { edges { cursor } } }' }),
      });
      // The whole body: nothing else (a stack, the statement, the driver's message) may ride along.
      expect(await response.json()).toEqual({
        data: null,
        errors: [
          {
            message: 'Unexpected error.',
            path: ['posts'],
            extensions: { code: 'INTERNAL_SERVER_ERROR' },
          },
        ],
      });
    } finally {
      await production.close();
      await proxy.stop();
    }
  });
});

describe('operations endpoints', () => {
  it('answers /health without I/O and exposes the listed metrics after traffic', async () => {
    const base = `http://127.0.0.1:${http.port}`;
    const scrape = async () => (await fetch(`${base}/metrics`)).text();
    expect((await fetch(`${base}/health`)).status).toBe(200);
    await createPosts(app.deps.db, [{ authorId: user.id }]);
    const before = await scrape();
    const feed = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-quire-debug': '1' },
      body: JSON.stringify({
        query:
          'query Feed($author: ID!) { node(id: $author) { ... on User { name } } posts(first: 2) { edges { cursor } } }',
        variables: { author: user.globalId },
        operationName: 'Feed',
      }),
    });
    const { extensions } = await feed.json();
    const metrics = await scrape();
    const delta = (series: string) => sample(metrics, series) - sample(before, series, 0);
    expect(
      delta('quire_graphql_request_duration_seconds_count{operation="Feed",status="200"}'),
    ).toBe(1);
    expect(delta('quire_sql_statements_per_request_count')).toBe(1);
    expect(delta('quire_sql_statements_per_request_sum')).toBe(extensions.sql.queries);
    const userCache = extensions.cache.user as { hits: number; misses: number };
    expect(userCache.hits + userCache.misses).toBeGreaterThan(0);
    expect(delta('quire_cache_misses_total{cache="user"}')).toBe(userCache.misses);
    expect(delta('quire_cache_hits_total{cache="user"}')).toBe(userCache.hits);
    const pool = (state: string) => sample(metrics, `quire_pg_pool_connections{state="${state}"}`);
    expect(pool('idle')).toBeGreaterThan(0);
    expect(pool('in_use')).toBeGreaterThanOrEqual(0);
    // Only states that partition the pool, so sum() is its size; queued queries count apart.
    const poolStates = metrics
      .split('\n')
      .filter((line) => line.startsWith('quire_pg_pool_connections{'))
      .map((line) => line.slice(0, line.indexOf('}') + 1));
    expect(poolStates.sort()).toEqual([
      'quire_pg_pool_connections{state="idle"}',
      'quire_pg_pool_connections{state="in_use"}',
    ]);
    expect(sample(metrics, 'quire_pg_pool_waiting_requests')).toBe(0);
    expect(metrics).not.toMatch(/quire_sql_queries_per_request/);
    // prom-client's process metrics, under the app's prefix.
    expect(sample(metrics, 'quire_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(metrics, 'quire_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(metrics, 'quire_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(metrics).toMatch(/^# TYPE quire_nodejs_eventloop_lag_seconds gauge$/m);
    for (const series of [
      'quire_rate_limit_rejections_total',
      'quire_active_subscriptions',
      'quire_pipeline_queue_depth',
    ]) {
      expect(sample(metrics, series)).toBeGreaterThanOrEqual(0);
    }
    expect(metrics).toMatch(/^# TYPE quire_pipeline_step_duration_seconds histogram$/m);
    expect(sample(metrics, 'quire_sql_statements_total')).toBeGreaterThan(0);
  });

  it('labels request metrics with well-formed operation names only, and a bounded number of them', async () => {
    const send = (operationName: string) =>
      app.yoga.fetch('http://quire.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `query ${operationName} { __typename }`, operationName }),
      });
    await send(`Long${'x'.repeat(100)}`);
    for (let index = 0; index < 250; index += 1) await send(`Flood${index}`);
    const labels = new Set(
      (await app.deps.metrics.requestDuration.get()).values.map(
        (value) => value.labels.operation as string,
      ),
    );
    expect(labels.has('other')).toBe(true);
    expect([...labels].some((label) => label.startsWith('Long'))).toBe(false);
    expect(labels.has('Flood0')).toBe(true);
    expect(labels.has('Flood249')).toBe(false);
    expect(labels.size).toBeLessThanOrEqual(202);
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

describe('closing with WebSocket operations under way', () => {
  it('answers a mutation still executing before the socket closes; subscriptions get 1001 at once', async () => {
    const server = await startHttpServer(app.yoga, {
      ...httpOptions(app.deps.config, 0),
      shutdownGraceMs: 10_000,
    });
    const url = `ws://127.0.0.1:${server.port}/graphql`;
    const [post] = await createPosts(app.deps.db, [{ authorId: user.id, title: 'Before close' }]);
    // Another session holds the post's row: the mutation waits for it inside its transaction.
    const locker = new pg.Client({ connectionString: app.database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('select id from posts where id = $1 for update', [post!.id]);
      const results = async (stream: AsyncIterable<unknown>) => {
        const seen: unknown[] = [];
        try {
          for await (const result of stream) seen.push(result);
          return { seen, closed: null };
        } catch (error) {
          return { seen, closed: (error as { code?: number }).code ?? String(error) };
        }
      };
      const subscription = results(
        wsSubscribe(
          url,
          'subscription { postStatusChanged { status } }',
          {},
          { token: user.token },
        ),
      );
      const mutation = results(
        wsSubscribe(
          url,
          'mutation($id: ID!) { updatePost(input: { id: $id, title: "After close" }) { post { title } } }',
          { id: globalId('Post', post!.id) },
          { token: user.token },
        ),
      );
      // Asked outside the locker's transaction, which would see one snapshot of the activity.
      const blocked = async () => {
        const { rows } = await sql<{ count: number }>`
          select count(*)::int as count from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(app.deps.db);
        return rows[0]!.count > 0;
      };
      for (let attempt = 0; attempt < 100 && !(await blocked()); attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const closed = server.close();
      // Closing ends the subscription without waiting for the mutation.
      expect(await subscription).toEqual({ seen: [], closed: 1001 });
      await locker.query('commit');
      await closed;
      expect(await mutation).toEqual({
        seen: [{ data: { updatePost: { post: { title: 'After close' } } } }],
        closed: null,
      });
    } finally {
      await locker.end();
    }
  }, 30_000);
});
