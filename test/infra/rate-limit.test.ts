import { getGraphQLRateLimiter, Store } from 'graphql-rate-limit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/infra/circuit-breaker.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { handedCount, RateLimiter } from '../../src/infra/rate-limit.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createUser, type TestUser } from '../helpers/factories.ts';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.ts';
import { untilRedisReachable } from '../helpers/redis-ready.ts';
import { redisUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

const limits = {
  REDIS_URL: redisUrl,
  RATE_LIMIT_WINDOW_SECONDS: '2',
  RATE_LIMIT_SEARCH: '3',
  RATE_LIMIT_MUTATIONS: '4',
};
const search = `query { searchPosts(query: "anything") { totalCount } }`;

let instanceA: TestApp;
let instanceB: TestApp;
let memoryOnly: TestApp;
let cluster: RedisCluster;
let clusterA: TestApp;
let clusterB: TestApp;

beforeAll(async () => {
  instanceA = await startTestApp(limits);
  instanceB = await startTestApp(limits, instanceA);
  memoryOnly = await startTestApp({ ...limits, REDIS_URL: '' });
  cluster = await startRedisCluster();
  clusterA = await startTestApp({ ...limits, REDIS_URL: cluster.url }, instanceA);
  clusterB = await startTestApp({ ...limits, REDIS_URL: cluster.url }, instanceA);
  await untilRedisReachable(instanceA, instanceB, clusterA, clusterB);
}, 60_000);

afterAll(async () => {
  await clusterB?.close();
  await clusterA?.close();
  await cluster?.stop();
  await instanceB?.close();
  await instanceA?.close();
  await memoryOnly?.close();
});

const codeOf = (result: Awaited<ReturnType<TestApp['gql']>>) =>
  result.errors?.[0]?.extensions?.code ?? 'OK';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForWindow(): Promise<void> {
  await sleep(2100);
}

const createPost = (title: string) =>
  `mutation { createPost(input: { title: "${title}", body: "x" }) { post { title } } }`;

describe.each<[string, () => [TestApp, TestApp]]>([
  ['one Redis', () => [instanceA, instanceB]],
  ['Redis Cluster', () => [clusterA, clusterB]],
])('shared rate limits (%s)', (_redis, pair) => {
  it('rejects the N+1th call with RATE_LIMITED and retryAfter, shared by instances, until the window passes', async () => {
    const [instanceA, instanceB] = pair();
    const user: TestUser = await createUser(instanceA.deps.db, 'AUTHOR');
    const options = { token: user.token };
    const results = [
      await instanceA.gql(search, {}, options),
      await instanceB.gql(search, {}, options),
      await instanceA.gql(search, {}, options),
      await instanceB.gql(search, {}, options),
    ];
    expect(results.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
    const rejection = results[3]!.errors![0]!;
    expect(rejection.extensions!.retryAfter).toBeGreaterThanOrEqual(1);
    expect(rejection.extensions!.retryAfter).toBeLessThanOrEqual(2);
    expect(results[3]!.data?.searchPosts ?? null).toBeNull();

    // Another viewer has a budget of their own.
    const other = await createUser(instanceA.deps.db, 'AUTHOR');
    expect(codeOf(await instanceA.gql(search, {}, { token: other.token }))).toBe('OK');

    await waitForWindow();
    expect(codeOf(await instanceA.gql(search, {}, options))).toBe('OK');
  });
});

describe('rate limits', () => {
  it.each([
    ['Redis', () => instanceA],
    ['Redis Cluster', () => clusterA],
    ['in-process', () => memoryOnly],
  ])('lets exactly the limit through when 10 calls race (%s store)', async (_store, instance) => {
    const app = instance();
    const user = await createUser(app.deps.db, 'AUTHOR');
    const results = await Promise.all(
      Array.from({ length: 10 }, () => app.gql(search, {}, { token: user.token })),
    );
    const codes = results.map(codeOf);
    expect(codes.filter((code) => code === 'OK')).toHaveLength(3);
    expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(7);
  });

  it('keeps only the allowed calls in the shared window, whatever the count handed to the limiter', async () => {
    const user = await createUser(instanceA.deps.db, 'AUTHOR');
    const codes = (
      await Promise.all(
        Array.from({ length: 12 }, () => instanceA.gql(search, {}, { token: user.token })),
      )
    ).map(codeOf);
    expect(codes.filter((code) => code === 'OK')).toHaveLength(3);
    const redis = new Redis(redisUrl);
    try {
      const keys = await redis.keys(`${instanceA.deps.config.REDIS_PREFIX}rate:user:${user.id}:*`);
      expect(keys).toHaveLength(1);
      // The atomic step records only the calls it allows: 3, not 12.
      expect(await redis.zcard(keys[0]!)).toBe(3);
    } finally {
      redis.disconnect();
    }
  });

  it('charges each aliased mutation field and rejects before anything is written', async () => {
    const user = await createUser(instanceA.deps.db, 'AUTHOR');
    const aliased = `mutation {
      a: createPost(input: { title: "A", body: "x" }) { post { id } }
      b: createPost(input: { title: "B", body: "x" }) { post { id } }
      c: createPost(input: { title: "C", body: "x" }) { post { id } }
    }`;
    expect(codeOf(await instanceA.gql(aliased, {}, { token: user.token }))).toBe('OK');
    const second = await instanceB.gql(aliased, {}, { token: user.token });
    expect(codeOf(second)).toBe('RATE_LIMITED');
    const { count } = await instanceA.deps.db
      .selectFrom('posts')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('author_id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(3);
    // The rejected calls did not use up the budget: one more mutation still fits.
    expect(
      codeOf(
        await instanceA.gql(
          `mutation { createPost(input: { title: "D", body: "x" }) { post { id } } }`,
          {},
          { token: user.token },
        ),
      ),
    ).toBe('OK');
  });

  it('limits anonymous clients by address', async () => {
    const results = [];
    for (let call = 0; call < 4; call += 1) results.push(await memoryOnly.gql(search, {}));
    expect(results.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
  });
});

describe('the mutation budget', () => {
  it('is charged only when the selected operation is a mutation', async () => {
    const user = await createUser(memoryOnly.deps.db, 'AUTHOR');
    // One document, two operations: the name picks which one runs (and is charged).
    const both = `query Read { __typename }
      mutation Write($title: String!) { createPost(input: { title: $title, body: "x" }) { post { id } } }`;
    const run = async (operationName: string, title = '') => {
      const response = await memoryOnly.yoga.fetch('http://quire.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
        body: JSON.stringify({ query: both, operationName, variables: { title } }),
      });
      return (await response.json()) as Awaited<ReturnType<TestApp['gql']>>;
    };
    const reads = [];
    for (let call = 0; call < 6; call += 1) reads.push(await run('Read'));
    expect(reads.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'OK']);
    const writes = [];
    for (let call = 0; call < 5; call += 1) writes.push(await run('Write', `Budget ${call}`));
    expect(writes.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'OK', 'RATE_LIMITED']);
  });
});

describe('rate limits while Redis is unreachable', () => {
  it('answers mutations and searches, limits per instance, and shares limits again once Redis is back', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
    await proxy.start();
    const proxied = await startTestApp(
      { ...limits, REDIS_URL: `redis://127.0.0.1:${proxy.port}` },
      instanceA,
    );
    try {
      const user = await createUser(instanceA.deps.db, 'AUTHOR');
      const options = { token: user.token };
      await proxy.stop();

      const created = await proxied.gql(createPost('Written during the outage'), {}, options);
      expect(created.errors).toBeUndefined();
      expect(created.data!.createPost.post.title).toBe('Written during the outage');
      const searches = [];
      for (let call = 0; call < 4; call += 1) searches.push(await proxied.gql(search, {}, options));
      // Not failing open: this instance still enforces the limit on its own.
      expect(searches.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
      expect(proxied.deps.rateLimiter.counters.storeErrors).toBe(5);

      await proxy.start();
      const deadline = Date.now() + 10_000;
      while (!(await proxied.deps.redisReachable().catch(() => false))) {
        if (Date.now() > deadline) throw new Error('redis did not come back through the proxy');
        await sleep(50);
      }
      // Shared again: calls through both instances count against one budget.
      const other = await createUser(instanceA.deps.db, 'AUTHOR');
      const shared = [
        await proxied.gql(search, {}, { token: other.token }),
        await instanceA.gql(search, {}, { token: other.token }),
        await proxied.gql(search, {}, { token: other.token }),
        await instanceA.gql(search, {}, { token: other.token }),
      ];
      expect(shared.map(codeOf)).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
      expect(proxied.deps.rateLimiter.counters.storeErrors).toBe(5);
    } finally {
      await proxied.close();
      await proxy.stop();
    }
  });
});

describe('a refusal that arrives late', () => {
  it('still refuses when Redis answers after the window has passed', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
    await proxy.start();
    // A one-second window, and a command timeout long enough for a reply held past it.
    const slow = await startTestApp(
      {
        ...limits,
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        REDIS_COMMAND_TIMEOUT_MS: '5000',
        CACHE: 'off',
        RATE_LIMIT_WINDOW_SECONDS: '1',
        RATE_LIMIT_SEARCH: '1',
      },
      instanceA,
    );
    try {
      await untilRedisReachable(slow);
      const user = await createUser(instanceA.deps.db, 'AUTHOR');
      expect(codeOf(await slow.gql(search, {}, { token: user.token }))).toBe('OK');
      // Redis refuses the second call at once; its answer reaches the server 1.3 s later.
      proxy.delayMs = 1300;
      const late = await slow.gql(search, {}, { token: user.token });
      expect(codeOf(late)).toBe('RATE_LIMITED');
      expect(slow.deps.rateLimiter.counters).toMatchObject({ rejected: 1, storeErrors: 0 });
    } finally {
      await slow.close();
      await proxy.stop();
    }
  }, 30_000);
});

describe('rules with windows of their own', () => {
  it('count each bucket over its own window, in Redis and in process', async () => {
    const redis = new Redis(redisUrl);
    const logger = createLogger({ LOG_LEVEL: 'silent' });
    const breaker = new CircuitBreaker({
      name: 'commands',
      failureThreshold: 5,
      cooldownMs: 1000,
      probe: () => redis.ping(),
      logger,
    });
    const rules = { brief: { max: 1, windowMs: 300 }, long: { max: 1, windowMs: 60_000 } };
    const prefix = `quire-test:rules-${Date.now()}:`;
    try {
      for (const limiter of [
        new RateLimiter(rules, { client: redis, prefix, breaker }, logger),
        new RateLimiter(rules, undefined, logger),
      ]) {
        await limiter.consume('ip:rules', 'brief');
        await expect(limiter.consume('ip:rules', 'brief')).rejects.toThrow(/Too many brief/);
        await sleep(400);
        // The call 400 ms ago has left the 300 ms window: the longest rule's window is not this one's.
        await limiter.consume('ip:rules', 'brief');
        expect(limiter.counters).toEqual({ rejected: 1, storeErrors: 0 });
      }
    } finally {
      redis.disconnect();
    }
  });
});

describe('one Redis step per charge', () => {
  it('records allowed calls and refuses the rest in one script call each, shared by instances, recording nothing refused', async () => {
    const user = await createUser(instanceA.deps.db, 'AUTHOR');
    const key = `rate:user:${user.id}:mutation`;
    const monitor = await new Redis(redisUrl).monitor();
    const commands: string[] = [];
    // Commands sent by clients, not those a script runs (MONITOR shows both, the latter as 'lua').
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.endsWith(key)))
        commands.push(args[0]!.toLowerCase());
    });
    try {
      const aliased = (count: number, from: number) =>
        `mutation { ${Array.from(
          { length: count },
          (_, index) =>
            `c${from + index}: createPost(input: { title: "Charge ${from + index}", body: "x" }) { post { id } }`,
        ).join(' ')} }`;
      expect(codeOf(await instanceA.gql(aliased(3, 0), {}, { token: user.token }))).toBe('OK');
      const refused = await instanceB.gql(aliased(2, 3), {}, { token: user.token });
      expect(codeOf(refused)).toBe('RATE_LIMITED');
      expect(refused.errors![0]!.extensions!.retryAfter).toBe(2);
      expect(codeOf(await instanceB.gql(aliased(1, 5), {}, { token: user.token }))).toBe('OK');
      // MONITOR lines arrive after the replies: wait for the third charge's.
      const deadline = Date.now() + 2000;
      while (commands.length < 3 && Date.now() < deadline) await sleep(20);
      // EVALSHA, or EVAL where a server had not seen the script: never a read of the window or
      // a removal of refused calls.
      expect(commands.filter((command) => !command.startsWith('eval'))).toEqual([]);
      expect(
        commands.filter((command) => command === 'eval' || command === 'evalsha').length,
      ).toBeGreaterThanOrEqual(3);
      const members = await instanceA.deps.db
        .selectFrom('posts')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('author_id', '=', user.id)
        .executeTakeFirstOrThrow();
      expect(Number(members.count)).toBe(4);
    } finally {
      monitor.disconnect();
    }
  });
});

describe('the count handed to graphql-rate-limit', () => {
  it('makes the library decide as the atomic step did, at most the limit whatever the window holds', async () => {
    /** A store handing the library `count` calls made now, as the recording stores do. */
    class Handing extends Store {
      count = 0;
      async getForIdentity() {
        return new Array<number>(this.count).fill(Date.now());
      }
      async setForIdentity() {}
    }
    const store = new Handing();
    const limiter = getGraphQLRateLimiter({ identifyContext: (key: string) => key, store });
    const decisions: string[] = [];
    for (const max of [1, 4, 60])
      for (let calls = 1; calls <= max + 2; calls++)
        for (const live of [0, 1, max - 1, max, max + 1, 5_000]) {
          const recorded = live + calls <= max;
          store.count = handedCount({ recorded }, { calls, max });
          expect(store.count).toBeLessThanOrEqual(max);
          const refusal = await limiter(
            {
              parent: undefined,
              args: { calls: new Array(calls) },
              context: 'client',
              info: { fieldName: 'mutation' } as never,
            },
            { max, window: '60s', arrayLengthField: 'calls', uncountRejected: true },
          );
          if (Boolean(refusal) === recorded)
            decisions.push(`max ${max}, ${calls} calls, ${live} live`);
        }
    expect(decisions).toEqual([]);
  });

  it('records every allowed call in the shared window under a raised limit', async () => {
    const app = await startTestApp({ ...limits, RATE_LIMIT_MUTATIONS: '100000' }, instanceA);
    try {
      const user = await createUser(app.deps.db, 'AUTHOR');
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, index) =>
          app.gql(createPost(`Window ${index}`), {}, { token: user.token }),
        ),
      );
      expect(results.map(codeOf).filter((code) => code !== 'OK')).toEqual([]);
      const redis = new Redis(redisUrl);
      try {
        expect(
          await redis.zcard(`${app.deps.config.REDIS_PREFIX}rate:user:${user.id}:mutation`),
        ).toBe(30);
      } finally {
        redis.disconnect();
      }
    } finally {
      await app.close();
    }
  });
});

describe('retryAfter', () => {
  it('waits until enough calls leave the window for every call the request charges', async () => {
    const slow = await startTestApp(
      { ...limits, RATE_LIMIT_WINDOW_SECONDS: '10', RATE_LIMIT_MUTATIONS: '4' },
      instanceA,
    );
    try {
      const user = await createUser(instanceA.deps.db, 'AUTHOR');
      const options = { token: user.token };
      let made = 0;
      const aliased = (count: number) =>
        `mutation { ${Array.from({ length: count }, () => {
          made += 1;
          return `p${made}: createPost(input: { title: "P${made}", body: "x" }) { post { id } }`;
        }).join(' ')} }`;
      expect(codeOf(await slow.gql(aliased(1), {}, options))).toBe('OK');
      await sleep(1100);
      expect(codeOf(await slow.gql(aliased(3), {}, options))).toBe('OK');
      // Two calls need two free slots: the second frees when the calls made 1.1 s after the
      // first leave the window, ~10 s from now (the oldest call alone would say ~9 s).
      const rejected = await slow.gql(aliased(2), {}, options);
      expect(codeOf(rejected)).toBe('RATE_LIMITED');
      expect(rejected.errors![0]!.extensions!.retryAfter).toBe(10);
    } finally {
      await slow.close();
    }
  });
});
