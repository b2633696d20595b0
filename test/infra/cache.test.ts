import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { interleaveWritesAndReads } from '../helpers/cache.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.ts';
import { untilRedisReachable } from '../helpers/redis-ready.ts';
import { redisUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

let instanceA: TestApp;
let instanceB: TestApp;
let cluster: RedisCluster;
let clusterA: TestApp;
let clusterB: TestApp;
let author: TestUser;
let otherAuthor: TestUser;

beforeAll(async () => {
  // These tests watch the resolver cache; response-cache.test.ts covers the layer above it.
  const env = { REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '1000', RESPONSE_CACHE: 'off' };
  instanceA = await startTestApp(env);
  instanceB = await startTestApp(env, instanceA);
  cluster = await startRedisCluster();
  clusterA = await startTestApp({ ...env, REDIS_URL: cluster.url }, instanceA);
  clusterB = await startTestApp({ ...env, REDIS_URL: cluster.url }, instanceA);
  await untilRedisReachable(instanceA, instanceB, clusterA, clusterB);
  author = await createUser(instanceA.deps.db, 'AUTHOR', 'Ada');
  otherAuthor = await createUser(instanceA.deps.db, 'AUTHOR', 'Grace');
}, 60_000);

afterAll(async () => {
  await clusterB?.close();
  await clusterA?.close();
  await cluster?.stop();
  await instanceB?.close();
  await instanceA?.close();
});

const readPost = `query($id: ID!) { post(id: $id) { title author { name } } }`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const updatePost = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }`;

describe.each<[string, () => [TestApp, TestApp]]>([
  ['one Redis', () => [instanceA, instanceB]],
  ['Redis Cluster', () => [clusterA, clusterB]],
])('resolver cache across instances (%s)', (_redis, pair) => {
  // The two instances under test, over the Redis of this variant (the file's pair by default).
  let instanceA: TestApp;
  let instanceB: TestApp;
  beforeAll(() => {
    [instanceA, instanceB] = pair();
  });
  // Both variants write one database: words of their own keep searches and tags apart.
  const secret = `secret${randomBytes(3).toString('hex')}`;
  const fresh = `fresh${randomBytes(3).toString('hex')}`;

  it('never serves a stale post: 200 interleaved writes through B and reads through A', async () => {
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id, title: 'v0' }]);
    const id = globalId('Post', post!.id);
    // A's view is warmed first, so a missing invalidation would show up as the old title.
    const { warm } = await interleaveWritesAndReads(instanceA, instanceB, id, author.token);
    const hits = warm.reduce((sum, read) => sum + (read.extensions!.cache.post?.hits ?? 0), 0);
    // The read after a read (no write between) was served from the cache every time.
    expect(hits).toBeGreaterThanOrEqual(199);
  });

  it('never shows a draft cached for its author to anyone else', async () => {
    const [draft] = await createPosts(instanceA.deps.db, [
      { authorId: author.id, status: 'DRAFT', title: secret },
    ]);
    const id = globalId('Post', draft!.id);
    const query = `query($id: ID!) { post(id: $id) { title } node(id: $id) { id } postStats { total } }`;
    const asAuthor = await instanceA.gql(query, { id }, { token: author.token });
    expect(asAuthor.data!.post.title).toBe(secret);
    // Again, now from the cache.
    const cached = await instanceA.gql(query, { id }, { token: author.token, debug: true });
    expect(cached.extensions!.cache.post.hits).toBeGreaterThan(0);
    for (const token of [undefined, otherAuthor.token]) {
      for (const instance of [instanceA, instanceB]) {
        const result = await instance.gql(query, { id }, { token });
        expect(result.data!.post).toBeNull();
        expect(result.data!.node).toBeNull();
        expect(result.data!.postStats.total).toBeLessThan(cached.data!.postStats.total);
      }
    }
    const search = `query { searchPosts(query: "${secret}") { edges { node { title } } } }`;
    expect(
      (await instanceA.gql(search, {}, { token: author.token })).data!.searchPosts.edges,
    ).toHaveLength(1);
    expect((await instanceA.gql(search, {})).data!.searchPosts.edges).toHaveLength(0);
    expect(
      (await instanceB.gql(search, {}, { token: otherAuthor.token })).data!.searchPosts.edges,
    ).toHaveLength(0);
  });

  it('invalidates results a post enters: stats and tag cloud after a publish', async () => {
    const stats = `{ postStats { byStatus { status count } } tagCloud { tag { name } postCount } }`;
    const before = await instanceA.gql(stats, {});
    const [draft] = await createPosts(instanceA.deps.db, [
      { authorId: author.id, status: 'DRAFT' },
    ]);
    const editor = await createUser(instanceA.deps.db, 'EDITOR');
    await instanceB.gql(
      `mutation($id: ID!, $tags: [String!]!) { setPostTags(input: { postId: $id, tags: $tags }) { post { id } } }`,
      { id: globalId('Post', draft!.id), tags: [fresh] },
      { token: author.token },
    );
    await instanceB.gql(
      updatePost,
      { input: { id: globalId('Post', draft!.id), status: 'PUBLISHED' } },
      { token: editor.token },
    );
    const after = await instanceA.gql(stats, {});
    const published = (result: typeof before) =>
      result.data!.postStats.byStatus.find(
        (entry: { status: string }) => entry.status === 'PUBLISHED',
      )?.count ?? 0;
    expect(published(after)).toBe(published(before) + 1);
    expect(after.data!.tagCloud).toContainEqual({ tag: { name: fresh }, postCount: 1 });
  });

  it('runs the nested query with fewer SQL statements when warm, with identical JSON', async () => {
    const users = await Promise.all(
      [1, 2, 3].map((n) => createUser(instanceA.deps.db, 'AUTHOR', `Writer ${n}`)),
    );
    const posts = await createPosts(
      instanceA.deps.db,
      Array.from({ length: 30 }, (_, index) => ({ authorId: users[index % 3]!.id })),
    );
    await instanceA.deps.db
      .insertInto('comments')
      .values(
        posts.flatMap((post) =>
          [0, 1].map((n) => ({ post_id: post.id, author_id: users[n]!.id, body: `c${n}` })),
        ),
      )
      .execute();
    const nested = `{ posts(first: 30) { edges { node { title author { name } tags { name } comments(first: 5) { edges { node { body author { name } } } } } } } }`;
    const cold = await instanceA.gql(nested, {}, { debug: true });
    const warm = await instanceB.gql(nested, {}, { debug: true });
    expect(warm.data).toEqual(cold.data);
    // Cold: posts page and comment pages (both with their authors), tags. Warm: tags come from
    // the cache; only the uncached lists remain (posts page, comment pages).
    expect(cold.extensions!.sql.queries).toBe(3);
    expect(warm.extensions!.sql.queries).toBe(2);
    expect(warm.extensions!.cache.postTags).toEqual({ hits: 30, misses: 0, errors: 0 });
  });
});

/** Another instance whose Redis connection runs through a proxy the test can cut. */
async function instanceBehindProxy() {
  const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
  await proxy.start();
  const app = await startTestApp(
    { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, RESPONSE_CACHE: 'off' },
    instanceA,
  );
  await untilRedisReachable(app);
  return { proxy, app };
}

describe('reads sent together', () => {
  it('fails only the read of an entry that cannot be decoded, not the others in its MGET', async () => {
    const [bad, good] = await createPosts(instanceA.deps.db, [
      { authorId: author.id, title: 'Mangled' },
      { authorId: author.id, title: 'Intact' },
    ]);
    for (const post of [bad, good])
      await instanceA.gql(readPost, { id: globalId('Post', post!.id) });
    const redis = new Redis(redisUrl);
    try {
      const slot = `quire-test:${instanceA.database.name}:{cache}:`;
      const namespace = (await redis.get(`${slot}namespace`)) ?? '0';
      await redis.set(`${slot}e${namespace}:post:${bad!.id}`, 'not a stamped entry', 'EX', 60);
    } finally {
      redis.disconnect();
    }
    // Both reads start in one turn, so their lookups share one MGET.
    const [mangled, intact] = await Promise.all(
      [bad, good].map((post) =>
        instanceA.gql(readPost, { id: globalId('Post', post!.id) }, { debug: true }),
      ),
    );
    expect(mangled!.data!.post.title).toBe('Mangled');
    expect(mangled!.extensions!.cache.post.errors).toBe(1);
    expect(intact!.data!.post.title).toBe('Intact');
    expect(intact!.extensions!.cache.post).toEqual({ hits: 1, misses: 0, errors: 0 });
  });
});

describe('invalidation rounds', () => {
  it('sends invalidations made together as one script call, and later ones after it', async () => {
    const tag = `round-${randomBytes(4).toString('hex')}`;
    const monitor = await new Redis(redisUrl).monitor();
    const calls: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.includes(tag))) calls.push(args);
    });
    try {
      const cache = instanceA.deps.cache;
      await Promise.all([
        cache.invalidate([`${tag}:a`]),
        cache.invalidate([`${tag}:b`, `${tag}:a`]),
        cache.invalidate([`${tag}:c`]),
      ]);
      await cache.invalidate([`${tag}:d`]);
      // Made while the round before is on its way (or answered): never folded into it.
      const sent = cache.invalidate([`${tag}:e`]);
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.all([sent, cache.invalidate([`${tag}:f`])]);
      const deadline = Date.now() + 2000;
      while (calls.length < 4 && Date.now() < deadline) await sleep(20);
      const keysOf = (args: string[]) =>
        args.filter((arg) => arg.includes(tag)).map((arg) => arg.slice(arg.indexOf(tag)));
      expect(calls.map(keysOf)).toEqual([
        [`${tag}:a`, `${tag}:b`, `${tag}:c`],
        [`${tag}:d`],
        [`${tag}:e`],
        [`${tag}:f`],
      ]);
    } finally {
      monitor.disconnect();
    }
  });
});

describe('when Redis goes away', () => {
  it('keeps answering from Postgres, counts errors, and serves hits again once Redis is back', async () => {
    const { proxy, app } = await instanceBehindProxy();
    try {
      const [post] = await createPosts(app.deps.db, [{ authorId: author.id, title: 'Sturdy' }]);
      const id = globalId('Post', post!.id);
      await app.gql(readPost, { id });
      expect((await app.gql(readPost, { id }, { debug: true })).extensions!.cache.post.hits).toBe(
        1,
      );

      await proxy.stop();
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const result = await app.gql(readPost, { id }, { debug: true });
        expect(result.errors).toBeUndefined();
        expect(result.data!.post.title).toBe('Sturdy');
        expect(result.extensions!.cache.post.errors).toBeGreaterThan(0);
      }
      expect(app.deps.cache.totals.post!.errors).toBeGreaterThanOrEqual(5);

      await proxy.start();
      let recovered = false;
      for (let attempt = 0; attempt < 100 && !recovered; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        await app.gql(readPost, { id });
        const result = await app.gql(readPost, { id }, { debug: true });
        recovered = (result.extensions!.cache.post?.hits ?? 0) > 0;
      }
      expect(recovered).toBe(true);
    } finally {
      await app.close();
      await proxy.stop();
    }
  });

  it('never serves an entry whose invalidation failed during the outage, on any instance', async () => {
    const { proxy, app } = await instanceBehindProxy();
    try {
      const [post] = await createPosts(app.deps.db, [{ authorId: author.id, title: 'Before' }]);
      const id = globalId('Post', post!.id);
      await app.gql(readPost, { id });
      const cached = await instanceA.gql(readPost, { id }, { debug: true });
      expect(cached.extensions!.cache.post.hits).toBe(1);

      await proxy.stop();
      const updated = await app.gql(
        updatePost,
        { input: { id, title: 'After' } },
        { token: author.token },
      );
      expect(updated.errors).toBeUndefined();
      expect(app.deps.cache.totals.invalidate!.errors).toBe(1);

      await proxy.start();
      const deadline = Date.now() + 10_000;
      while (!(await app.deps.redisReachable().catch(() => false))) {
        if (Date.now() > deadline) throw new Error('redis did not come back through the proxy');
        await sleep(50);
      }
      // The instance that wrote, and one that kept its Redis connection all along.
      for (const instance of [app, instanceA, app, instanceA]) {
        expect((await instance.gql(readPost, { id })).data!.post.title).toBe('After');
      }
      const warm = await app.gql(readPost, { id }, { debug: true });
      expect(warm.data!.post.title).toBe('After');
      expect(warm.extensions!.cache.post.hits).toBe(1);
    } finally {
      await app.close();
      await proxy.stop();
    }
  });
});

describe('without Redis', () => {
  it('caches in this process only when it owns the database (the embedded default)', async () => {
    const external = await startTestApp({}, instanceA);
    const embedded = await startTestApp({ DATABASE_URL: '' }, instanceA);
    try {
      expect(external.deps.cache.kind).toBe('disabled');
      expect(embedded.deps.cache.kind).toBe('memory');
      const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id, title: 'One' }]);
      const id = globalId('Post', post!.id);
      await external.gql(readPost, { id });
      // The insert's own notification may drop the first cached answer when it arrives after the
      // read: read until the answer is served from the cache.
      const deadline = Date.now() + 5_000;
      for (;;) {
        const warmEmbedded = await embedded.gql(readPost, { id }, { debug: true });
        if (warmEmbedded.extensions!.cache.response?.hits === 1) break;
        if (Date.now() > deadline) throw new Error('the embedded instance never cached the post');
        await sleep(20);
      }

      // Another process (a worker, `npm run seed`, another instance) writes the database.
      await instanceA.deps.db
        .updateTable('posts')
        .set({ title: 'Two' })
        .where('id', '=', post!.id)
        .execute();
      const read = await external.gql(readPost, { id }, { debug: true });
      expect(read.data!.post.title).toBe('Two');
      expect(read.extensions!.cache.post?.hits ?? 0).toBe(0);
      expect(read.extensions!.cache.response).toBeUndefined();
    } finally {
      await embedded.close();
      await external.close();
    }
  });

  it('refuses to start `npm run worker`: its events could never reach an API process', async () => {
    const worker = promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, DATABASE_URL: instanceA.database.url, REDIS_URL: '' },
      timeout: 15_000,
      killSignal: 'SIGKILL',
    });
    await expect(worker).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('REDIS_URL is required for npm run worker'),
    });
  });
});
