import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LISTENER_APPLICATION_NAME } from '../../src/infra/pg-listener.ts';
import { hashToken } from '../../src/modules/auth/token.ts';
import { VIEWER_MEMORY_TTL_MS } from '../../src/modules/auth/viewer-cache.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

// DATABASE_URL '' is the embedded default's path without Redis: the in-process cache hears other
// processes' invalidations and the viewer cache hears viewer changes, both over Postgres.
let app: TestApp;
let author: TestUser;
let admin: TestUser;

const countPosts = '{ posts(first: 1) { totalCount } }';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 5_000; !(await done()); ) {
    if (Date.now() > deadline) throw new Error(what);
    await sleep(20);
  }
}

/** `{ __typename }` with `token` on `on`: its error code and statements (0 once the viewer is kept). */
async function asViewer(on: TestApp, token: string) {
  const response = await on.gql('{ __typename }', undefined, { token, debug: true });
  return {
    code: response.errors?.[0]?.extensions?.code as string | undefined,
    statements: response.extensions?.sql?.queries as number | undefined,
  };
}

/** The anonymous post count on `on`, and whether its in-process cache served it. */
async function readCount(on = app): Promise<{ count: number; cached: boolean }> {
  const read = await on.gql(countPosts, undefined, { debug: true });
  return {
    count: read.data!.posts.totalCount as number,
    cached: (read.extensions!.cache.response?.hits ?? 0) > 0,
  };
}

/** Both consumers in use and trusting the feed: `token`'s viewer kept, the count served cached. */
async function bothTrusting(token: string): Promise<number> {
  await until(async () => (await asViewer(app, token)).statements === 0, 'the viewer is not kept');
  await until(async () => (await readCount()).cached, 'the cache does not serve');
  return (await readCount()).count;
}

/** This database's backends that are not the pool's (application_name 'quire'). */
async function otherBackends() {
  const { rows } = await sql<{ pid: number; application_name: string }>`
    select pid, application_name from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and application_name <> 'quire'`.execute(app.deps.db);
  return rows;
}

async function publishedPosts(): Promise<number> {
  const { rows } = await sql<{ count: string }>`
    select count(*) from posts where status = 'PUBLISHED'`.execute(app.deps.db);
  return Number(rows[0]!.count);
}

/**
 * With both consumers trusting the listener, kills its backend and runs `observe` while it is
 * down: no new backend exists until the retry a second later. If one did before `observe` ended,
 * it all runs again.
 */
async function whileKilled<T>(observe: () => Promise<T>): Promise<{ killed: number; seen: T }> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    await bothTrusting(author.token);
    const [listener, ...more] = await otherBackends();
    expect(more).toEqual([]);
    const { rows } = await sql<{ terminated: boolean }>`
      select pg_terminate_backend(${listener!.pid}::int) as terminated`.execute(app.deps.db);
    expect(rows).toEqual([{ terminated: true }]);
    const seen = await observe();
    const backends = await otherBackends();
    if (backends.every((backend) => backend.pid === listener!.pid))
      return { killed: listener!.pid, seen };
  }
  throw new Error('the listener was back before each observation ended');
}

beforeAll(async () => {
  app = await startTestApp({ DATABASE_URL: '', REDIS_URL: '' });
  author = await createUser(app.deps.db, 'AUTHOR');
  admin = await createUser(app.deps.db, 'ADMIN');
  await createPosts(app.deps.db, [{ authorId: author.id, status: 'PUBLISHED' }]);
});

afterAll(async () => {
  await app?.close();
});

describe('the Postgres LISTEN connection without Redis', () => {
  it('is one per process, for viewer signals and cache invalidations together', async () => {
    expect(app.deps.cache.kind).toBe('memory');
    await bothTrusting(author.token);
    expect((await otherBackends()).map((backend) => backend.application_name)).toEqual([
      LISTENER_APPLICATION_NAME,
    ]);
  });

  it('once killed, leaves both consumers trusting nothing until it is back, then hears both channels', async () => {
    const { killed, seen } = await whileKilled(async () => {
      // The viewer is read on every request (a revocation sent now would be lost)…
      await until(async () => (await asViewer(app, author.token)).statements === 1, 'kept');
      // …and the cache drops what it held: a write nobody announces shows at the next read,
      // where a count cached before the loss would be stale.
      await createPosts(app.deps.db, [{ authorId: author.id, status: 'PUBLISHED' }]);
      return { read: await readCount(), published: await publishedPosts() };
    });
    expect(seen.read).toEqual({ count: seen.published, cached: false });

    // Back on a new backend: both trust it again.
    expect(await bothTrusting(author.token)).toBe(seen.published);
    const [reconnected, ...others] = await otherBackends();
    expect(others).toEqual([]);
    expect(reconnected!.application_name).toBe(LISTENER_APPLICATION_NAME);
    expect(reconnected!.pid).not.toBe(killed);
    const before = seen.published;

    // Sent after the recovery by another instance, both arrive over the new connection.
    const other = await startTestApp({ REDIS_URL: '', RESPONSE_CACHE: 'off' }, app);
    try {
      const created = await other.gql(
        'mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }',
        { input: { title: 'After the reconnect', body: '', status: 'PUBLISHED' } },
        { token: admin.token },
      );
      expect(created.errors).toBeUndefined();
      // Unheard, the cached count would stay for CACHE_TTL_SECONDS.
      await until(async () => (await readCount()).count === before + 1, 'invalidation unheard');

      // A viewer loaded now: unheard, the revocation would show only after VIEWER_MEMORY_TTL_MS.
      const reader = await createUser(app.deps.db, 'AUTHOR');
      const loadedAt = Date.now();
      await until(async () => (await asViewer(app, reader.token)).statements === 0, 'not kept');
      const token = await app.deps.db
        .selectFrom('api_tokens')
        .select('id')
        .where('token_hash', '=', hashToken(reader.token))
        .executeTakeFirstOrThrow();
      const revoked = await other.gql(
        'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { revokedAt } } }',
        { id: globalId('ApiToken', token.id) },
        { token: admin.token },
      );
      expect(revoked.errors).toBeUndefined();
      await until(
        async () => (await asViewer(app, reader.token)).code === 'UNAUTHENTICATED',
        'revocation unheard',
      );
      expect(Date.now() - loadedAt).toBeLessThan(VIEWER_MEMORY_TTL_MS);
    } finally {
      await other.close();
    }
  });

  it('closes at shutdown while it is reconnecting: no backend is left, nor once the retry is due', async () => {
    const [own] = await otherBackends();
    // A second instance over the same database, with its in-process cache: it listens at start.
    const second = await startTestApp({ DATABASE_URL: '', REDIS_URL: '' }, app);
    let pids: number[] = [];
    await until(async () => {
      pids = (await otherBackends()).map((backend) => backend.pid);
      return pids.length === 2;
    }, 'the second instance never listened');
    const secondPid = pids.find((pid) => pid !== own!.pid)!;
    await until(async () => (await readCount(second)).cached, 'the second never cached');
    await sql`select pg_terminate_backend(${secondPid}::int)`.execute(app.deps.db);
    // Closed once it noticed the loss: its retry is due a second later.
    await until(async () => !(await readCount(second)).cached, 'the loss went unnoticed');
    await second.close();
    // Past the retry a lost connection waits for.
    await sleep(1_500);
    expect(await otherBackends()).toEqual([own]);
  });
});
