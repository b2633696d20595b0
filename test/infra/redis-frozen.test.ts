import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { untilRedisReachable } from '../helpers/redis-ready.ts';
import { redisUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

const env = {
  REDIS_URL: redisUrl,
  REDIS_COMMAND_TIMEOUT_MS: '50',
  RATE_LIMIT_MUTATIONS: '1000',
  RATE_LIMIT_SEARCH: '3',
};
const readPost = `query($id: ID!) { post(id: $id) { title author { name } } }`;
const updatePost = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }`;
const searchPosts = `query($q: String!) { searchPosts(query: $q) { totalCount } }`;
const addComment = `mutation($postId: ID!, $body: String!) { addComment(input: { postId: $postId, body: $body }) { comment { body } } }`;

let direct: TestApp;
let frozen: TestApp;
let proxy: TcpProxy;
let author: TestUser;

beforeAll(async () => {
  direct = await startTestApp(env);
  proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
  await proxy.start();
  frozen = await startTestApp({ ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, direct);
  await untilRedisReachable(direct, frozen);
  author = await createUser(direct.deps.db, 'AUTHOR', 'Ada');
});

afterAll(async () => {
  proxy?.unfreeze();
  await frozen?.close();
  await proxy?.stop();
  await direct?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const codeOf = (result: Awaited<ReturnType<TestApp['gql']>>) =>
  result.errors?.[0]?.extensions?.code ?? 'OK';

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

/** One sample of the metric line `name{connection="commands"}` as Prometheus scrapes it. */
async function breakerMetric(app: TestApp, name: string): Promise<number> {
  const text = await app.deps.metrics.registry.metrics();
  const line = text.split('\n').find((entry) => entry.startsWith(`${name}{connection="commands"}`));
  return Number(line?.split(' ').at(-1));
}

describe('Redis that holds connections open but never answers', () => {
  it('costs a request milliseconds once the breaker opens, answers correctly, and shares state again after', async () => {
    const [post] = await createPosts(direct.deps.db, [{ authorId: author.id, title: 'v0' }]);
    const id = globalId('Post', post!.id);
    // Warm: the proxied instance has a healthy connection and a cached response.
    await frozen.gql(readPost, { id });
    expect(
      (await frozen.gql(readPost, { id }, { debug: true })).extensions!.cache.response.hits,
    ).toBe(1);

    // The other instance caches the post too: its entry must not outlive the writes made while
    // the proxied instance could not invalidate it.
    await direct.gql(readPost, { id });

    proxy.freeze();
    const latencies: Record<string, number[]> = {
      read: [],
      updatePost: [],
      search: [],
      comment: [],
    };
    for (let round = 1; round <= 4; round += 1) {
      const searcher = await createUser(direct.deps.db, 'AUTHOR');
      const read = await timed(() => frozen.gql(readPost, { id }));
      const update = await timed(() =>
        frozen.gql(updatePost, { input: { id, title: `v${round}` } }, { token: author.token }),
      );
      const search = await timed(() =>
        frozen.gql(searchPosts, { q: 'anything' }, { token: searcher.token }),
      );
      const comment = await timed(() =>
        frozen.gql(addComment, { postId: id, body: `c${round}` }, { token: author.token }),
      );
      expect(read.result.data!.post.title).toBe(`v${round - 1}`);
      expect(update.result.data!.updatePost.post.title).toBe(`v${round}`);
      expect(codeOf(search.result)).toBe('OK');
      expect(comment.result.data!.addComment.comment.body).toBe(`c${round}`);
      // The first round pays the timeouts that open the breaker.
      if (round === 1) {
        console.info(
          'first round ms (opens the breaker):',
          [read, update, search, comment].map((call) => Math.round(call.ms)),
        );
        continue;
      }
      latencies.read!.push(read.ms);
      latencies.updatePost!.push(update.ms);
      latencies.search!.push(search.ms);
      latencies.comment!.push(comment.ms);
    }
    console.info('per-request ms with Redis frozen, breaker open:', latencies);
    for (const samples of Object.values(latencies)) expect(Math.max(...samples)).toBeLessThan(300);
    expect(await breakerMetric(frozen, 'quire_redis_circuit_open')).toBe(1);
    expect(await breakerMetric(frozen, 'quire_redis_circuit_refused_total')).toBeGreaterThan(0);
    // Limits still hold while frozen, per instance: a fourth search in the window is refused.
    const limited = await createUser(direct.deps.db, 'AUTHOR');
    const searches = [];
    for (let call = 0; call < 4; call += 1)
      searches.push(await frozen.gql(searchPosts, { q: 'x' }, { token: limited.token }));
    expect(searches.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);

    proxy.unfreeze();
    // A request after the cool-down starts the probe; once it answers, the breaker closes.
    const deadline = Date.now() + 10_000;
    while ((await breakerMetric(frozen, 'quire_redis_circuit_open')) !== 0) {
      if (Date.now() > deadline) throw new Error('breaker did not close after unfreeze');
      await frozen.gql(readPost, { id });
      await sleep(100);
    }
    // The invalidations lost while frozen renew the cache namespace once Redis answers.
    while ((await direct.gql(readPost, { id })).data!.post.title !== 'v4') {
      if (Date.now() > deadline) throw new Error('the other instance kept serving a stale post');
      await sleep(50);
    }
    // Shared again: invalidations reach the other instance, and its cache serves hits again.
    await direct.gql(updatePost, { input: { id, title: 'after' } }, { token: author.token });
    expect((await frozen.gql(readPost, { id })).data!.post.title).toBe('after');
    const warm = await frozen.gql(readPost, { id }, { debug: true });
    expect(warm.data!.post.title).toBe('after');
    expect(warm.extensions!.cache.response.hits).toBe(1);
    // Rate limits are one budget across both instances again.
    const shared = await createUser(direct.deps.db, 'AUTHOR');
    const codes = [];
    for (const app of [frozen, direct, frozen, direct])
      codes.push(codeOf(await app.gql(searchPosts, { q: 'x' }, { token: shared.token })));
    expect(codes).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
  });
});
