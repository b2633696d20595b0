import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LISTENER_APPLICATION_NAME } from '../../src/infra/pg-listener.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, type TestUser } from '../helpers/factories.ts';

// DATABASE_URL '' is the embedded default's path: an in-process cache, no Redis.
let app: TestApp;
let author: TestUser;

const countPosts = '{ posts(first: 1) { totalCount } }';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function publishedPosts(): Promise<number> {
  const { rows } = await sql<{ count: string }>`
    select count(*) from posts where status = 'PUBLISHED'`.execute(app.deps.db);
  return Number(rows[0]!.count);
}

/** Reads until the answer comes from the cache (the feed connected and the entry is stored). */
async function untilCached(): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const read = await app.gql(countPosts, undefined, { debug: true });
    if ((read.extensions!.cache.response?.hits ?? 0) > 0) return read.data!.posts.totalCount;
    if (Date.now() > deadline) throw new Error('the in-process cache never served a read');
    await sleep(50);
  }
}

/** The first read within `ms` that answers `expected`, or the last answer. */
async function totalCountWithin(ms: number, expected: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const count = (await app.gql(countPosts)).data!.posts.totalCount as number;
    if (count === expected || Date.now() > deadline) return count;
    await sleep(50);
  }
}

beforeAll(async () => {
  app = await startTestApp({ DATABASE_URL: '', REDIS_URL: '' });
  author = await createUser(app.deps.db, 'AUTHOR');
  await createPosts(app.deps.db, [{ authorId: author.id, status: 'PUBLISHED' }]);
});

afterAll(async () => {
  await app?.close();
});

describe('in-process cache without Redis', () => {
  it('hears `npm run seed` from another process within a second', async () => {
    expect(app.deps.cache.kind).toBe('memory');
    expect(await untilCached()).toBe(1);

    await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/db/seed-cli.ts',
        '--users',
        '3',
        '--posts',
        '20',
        '--comments',
        '0',
        '--tags',
        '2',
      ],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        env: { ...process.env, DATABASE_URL: app.database.url, REDIS_URL: '', LOG_LEVEL: 'warn' },
        timeout: 30_000,
        killSignal: 'SIGKILL',
      },
    );
    const expected = await publishedPosts();
    expect(expected).toBeGreaterThan(1);
    expect(await totalCountWithin(1_000, expected)).toBe(expected);
  });

  it('serves nothing it may have missed while its LISTEN connection was down', async () => {
    const before = await untilCached();
    const { rows } = await sql<{ killed: boolean }>`
      select pg_terminate_backend(pid) as killed from pg_stat_activity
      where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(
      app.deps.db,
    );
    expect(rows).toEqual([{ killed: true }]);
    await sleep(200);
    // A write nobody announces, made while the feed is down: only renewal keeps it from being stale.
    await createPosts(app.deps.db, [{ authorId: author.id, status: 'PUBLISHED' }]);
    expect((await app.gql(countPosts)).data!.posts.totalCount).toBe(before + 1);
    // The feed reconnects and the cache serves again.
    expect(await untilCached()).toBe(before + 1);
  });
});
