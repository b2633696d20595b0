import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../../src/http.ts';
import { LISTENER_APPLICATION_NAME } from '../../../src/infra/pg-listener.ts';
import { hashToken } from '../../../src/modules/auth/token.ts';
import { VIEWER_MEMORY_TTL_MS } from '../../../src/modules/auth/viewer-cache.ts';
import { type GraphQLResponse, startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { redisUrl } from '../../helpers/services.ts';
import { TcpProxy } from '../../helpers/tcp-proxy.ts';

/**
 * Three instances over one database and one Redis namespace: `a` and `b` reach Redis directly,
 * `cut` through a proxy the tests freeze to take Redis (and so the change signal) away from it.
 */
let a: TestApp;
let b: TestApp;
let cut: TestApp;
let proxy: TcpProxy;
/** Requests reach the instances over HTTP, as from a client: one event-loop turn per hop. */
const servers = new Map<TestApp, HttpServer>();

beforeAll(async () => {
  const env = { REDIS_URL: redisUrl, RESPONSE_CACHE: 'off', RATE_LIMIT_MUTATIONS: '10000' };
  a = await startTestApp(env);
  b = await startTestApp(env, a);
  proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
  await proxy.start();
  cut = await startTestApp({ ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, a);
  for (const app of [a, b, cut])
    servers.set(app, await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)));
});

afterAll(async () => {
  proxy?.unfreeze();
  for (const server of servers.values()) await server.close();
  for (const app of [cut, b, a]) await app?.close();
  await proxy?.stop();
});

const viewerQuery = '{ viewer { id role } }';

/** `query` sent to `app` over HTTP with `token` and the debug extensions. */
async function send(app: TestApp, token: string, query: string, variables = {}) {
  return (await (
    await fetch(`http://127.0.0.1:${servers.get(app)!.port}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        'x-quire-debug': '1',
      },
      body: JSON.stringify({ query, variables }),
    })
  ).json()) as GraphQLResponse;
}

/** The viewer as `app` sees it for `token`, with the statements the request ran. */
async function whoAmI(app: TestApp, token: string) {
  const response = await send(app, token, viewerQuery);
  return {
    code: response.errors?.[0]?.extensions?.code as string | undefined,
    role: response.data?.viewer?.role as string | undefined,
    statements: response.extensions?.sql?.queries as number | undefined,
  };
}

async function tokenId(user: TestUser): Promise<string> {
  const row = await a.deps.db
    .selectFrom('api_tokens')
    .select('id')
    .where('token_hash', '=', hashToken(user.token))
    .executeTakeFirstOrThrow();
  return globalId('ApiToken', row.id);
}

/** Until the instance's viewer cache keeps entries (its change subscription is confirmed). */
async function warm(app: TestApp, token: string): Promise<void> {
  for (const deadline = Date.now() + 3000; (await whoAmI(app, token)).statements !== 0; ) {
    if (Date.now() > deadline) throw new Error('the viewer never came from the cache');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function revoke(on: TestApp, user: TestUser, by: TestUser) {
  const response = await on.gql(
    'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { revokedAt } } }',
    { id: await tokenId(user) },
    { token: by.token },
  );
  expect(response.errors).toBeUndefined();
}

describe('viewer cache', () => {
  it('runs no statement for the token once warm', async () => {
    const user = await createUser(a.deps.db, 'AUTHOR');
    const first = await whoAmI(b, user.token);
    expect(first.role).toBe('AUTHOR');
    expect(first.statements).toBeGreaterThan(0);
    await warm(b, user.token);
    expect(await whoAmI(b, user.token)).toEqual({ code: undefined, role: 'AUTHOR', statements: 0 });
  });

  it('reads a cold token once for many requests that arrive together', async () => {
    const other = await createUser(a.deps.db, 'AUTHOR');
    await warm(b, other.token);
    // An admin's responses list their statements' text.
    const user = await createUser(a.deps.db, 'ADMIN');
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => send(b, user.token, viewerQuery)),
    );
    expect(answers.every((answer) => answer.data?.viewer?.role === 'ADMIN')).toBe(true);
    const tokenStatements = answers.flatMap((answer) =>
      ((answer.extensions?.sql?.statements ?? []) as { sql: string }[]).filter((statement) =>
        statement.sql.includes('api_tokens'),
      ),
    );
    // One read of the token and one last_used_at write, whichever requests ran them.
    expect(tokenStatements.map((statement) => statement.sql.split(' ')[0])).toEqual([
      'select',
      'update',
    ]);
  });

  it('refuses a token revoked on another instance at the very next request', async () => {
    const admin = await createUser(a.deps.db, 'ADMIN');
    const user = await createUser(a.deps.db, 'AUTHOR');
    await warm(a, user.token);
    await warm(b, user.token);
    await revoke(a, user, admin);
    expect((await whoAmI(b, user.token)).code).toBe('UNAUTHENTICATED');
    expect((await whoAmI(a, user.token)).code).toBe('UNAUTHENTICATED');
  });

  it('serves a new role at once on every instance', async () => {
    const admin = await createUser(a.deps.db, 'ADMIN');
    const user = await createUser(a.deps.db, 'EDITOR');
    await warm(a, user.token);
    await warm(b, user.token);
    const changed = await a.gql(
      'mutation($user: ID!) { setUserRole(input: { userId: $user, role: AUTHOR }) { user { role } } }',
      { user: user.globalId },
      { token: admin.token },
    );
    expect(changed.errors).toBeUndefined();
    // Publishing takes the editor role the token was cached with.
    for (const app of [b, a]) {
      const published = await send(
        app,
        user.token,
        'mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }',
        { input: { title: 'Still an editor?', body: '', status: 'PUBLISHED' } },
      );
      expect(published.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
  });

  it('without the signal (Redis frozen), serves a revoked token at most VIEWER_MEMORY_TTL_MS', async () => {
    const admin = await createUser(a.deps.db, 'ADMIN');
    const user = await createUser(a.deps.db, 'AUTHOR');
    await warm(cut, user.token);
    proxy.freeze();
    try {
      await revoke(a, user, admin);
      const revokedAt = Date.now();
      // The cut-off instance never hears of it: it serves the cached viewer for a while…
      expect((await whoAmI(cut, user.token)).code).toBeUndefined();
      for (;;) {
        const { code } = await whoAmI(cut, user.token);
        if (code === 'UNAUTHENTICATED') break;
        expect(Date.now() - revokedAt).toBeLessThan(VIEWER_MEMORY_TTL_MS + 1500);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // …and no longer than its in-process TTL (plus one Redis command timeout to fall back).
      expect(Date.now() - revokedAt).toBeLessThan(VIEWER_MEMORY_TTL_MS + 1500);
    } finally {
      proxy.unfreeze();
    }
  });
});

describe('viewer cache without Redis', () => {
  /** The statements a request with `token` costs on `app`: 0 once its viewer is kept in memory. */
  const tokenStatements = async (app: TestApp, token: string) =>
    (await send(app, token, '{ __typename }')).extensions?.sql?.queries as number;
  const until = async (done: () => Promise<boolean>, what: string) => {
    for (const deadline = Date.now() + 5000; !(await done()); ) {
      if (Date.now() > deadline) throw new Error(what);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  it('drops a token revoked, or a role changed, on another instance as the signal arrives over Postgres', async () => {
    const env = { REDIS_URL: '', RESPONSE_CACHE: 'off', RATE_LIMIT_MUTATIONS: '10000' };
    const first = await startTestApp(env, a);
    const second = await startTestApp(env, a);
    try {
      for (const app of [first, second])
        servers.set(app, await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)));
      const admin = await createUser(a.deps.db, 'ADMIN');
      const user = await createUser(a.deps.db, 'AUTHOR');
      const editor = await createUser(a.deps.db, 'EDITOR');
      // Warm: the token costs no statement (nothing else is cached without Redis).
      const warmToken = (app: TestApp, token: string) =>
        until(async () => (await tokenStatements(app, token)) === 0, 'never warm');
      for (const app of [first, second]) {
        await warmToken(app, user.token);
        await warmToken(app, editor.token);
      }
      await revoke(first, user, admin);
      // Postgres wakes the other listeners as it wakes the publisher's: a scheduling hiccup can
      // hold the signal for a few ms, far below the VIEWER_MEMORY_TTL_MS a lost one would cost.
      const revokedAt = Date.now();
      await until(
        async () => (await whoAmI(second, user.token)).code === 'UNAUTHENTICATED',
        'still served',
      );
      expect(Date.now() - revokedAt).toBeLessThan(VIEWER_MEMORY_TTL_MS / 5);
      const changed = await first.gql(
        'mutation($user: ID!) { setUserRole(input: { userId: $user, role: AUTHOR }) { user { role } } }',
        { user: editor.globalId },
        { token: admin.token },
      );
      expect(changed.errors).toBeUndefined();
      const changedAt = Date.now();
      await until(async () => (await whoAmI(second, editor.token)).role === 'AUTHOR', 'old role');
      expect(Date.now() - changedAt).toBeLessThan(VIEWER_MEMORY_TTL_MS / 5);
    } finally {
      for (const app of [first, second]) {
        await servers.get(app)?.close();
        servers.delete(app);
        await app.close();
      }
    }
  });

  it('notices a LISTEN connection that goes silent within the heartbeat bound, refuses a token revoked meanwhile, and trusts its cache again once it is back', async () => {
    const listenProxy = new TcpProxy('127.0.0.1', Number(new URL(a.database.url).port || 5432));
    await listenProxy.start();
    const listenUrl = new URL(a.database.url);
    listenUrl.host = `127.0.0.1:${listenProxy.port}`;
    const heartbeatMs = 200;
    const heartbeatTimeoutMs = 300;
    // Only the LISTEN connection goes through the proxy: requests still reach Postgres.
    const app = await startTestApp(
      {
        REDIS_URL: '',
        RESPONSE_CACHE: 'off',
        DATABASE_LISTEN_URL: listenUrl.toString(),
        LISTEN_HEARTBEAT_MS: String(heartbeatMs),
        LISTEN_HEARTBEAT_TIMEOUT_MS: String(heartbeatTimeoutMs),
      },
      a,
    );
    const listenerUp = async () =>
      (await app.deps.metrics.registry.getSingleMetric('quire_pg_listener_up')!.get()).values[0]!
        .value;
    try {
      servers.set(app, await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)));
      const user = await createUser(a.deps.db, 'AUTHOR');
      const victim = await createUser(a.deps.db, 'AUTHOR');
      for (const token of [user.token, victim.token])
        await until(async () => (await tokenStatements(app, token)) === 0, 'never warm');
      expect(await listenerUp()).toBe(1);
      // A half-open connection: nothing forwarded, nothing closed, no error on either side.
      listenProxy.freeze();
      const frozenAt = Date.now();
      await until(async () => (await listenerUp()) === 0, 'the silent connection went unnoticed');
      // The bound, with room for two busy cores' scheduling.
      expect(Date.now() - frozenAt).toBeLessThan(heartbeatMs + heartbeatTimeoutMs + 1000);
      // Revoked with no signal at all (as one sent into the dead connection would be lost).
      await sql`update api_tokens set revoked_at = now() where token_hash = ${hashToken(victim.token)}`.execute(
        a.deps.db,
      );
      expect((await whoAmI(app, victim.token)).code).toBe('UNAUTHENTICATED');
      expect(await tokenStatements(app, user.token)).toBe(1);
      listenProxy.unfreeze();
      await until(async () => (await listenerUp()) === 1, 'never back');
      await until(
        async () => (await tokenStatements(app, user.token)) === 0,
        'never trusted again',
      );
      expect((await whoAmI(app, victim.token)).code).toBe('UNAUTHENTICATED');
    } finally {
      listenProxy.unfreeze();
      await servers.get(app)?.close();
      servers.delete(app);
      await app.close();
      await listenProxy.stop();
    }
  });

  it('keeps no viewer in memory while its signal feed is down, and again once it is back', async () => {
    const app = await startTestApp({ REDIS_URL: '', RESPONSE_CACHE: 'off' }, a);
    try {
      servers.set(app, await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)));
      const user = await createUser(a.deps.db, 'AUTHOR');
      await until(async () => (await tokenStatements(app, user.token)) === 0, 'never warm');
      const { rows } = await sql<{ killed: boolean }>`
        select pg_terminate_backend(pid) as killed from pg_stat_activity
        where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(
        app.deps.db,
      );
      expect(rows).toEqual([{ killed: true }]);
      // Revocations sent now would be lost: the token is read on every request until it is back.
      await until(async () => (await tokenStatements(app, user.token)) === 1, 'still cached');
      expect(await tokenStatements(app, user.token)).toBe(1);
      await until(async () => (await tokenStatements(app, user.token)) === 0, 'never back');
    } finally {
      await servers.get(app)?.close();
      servers.delete(app);
      await app.close();
    }
  });
});
