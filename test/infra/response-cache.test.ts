import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpOptions, startHttpServer } from '../../src/http.ts';
import { registerStep } from '../../src/processing/registry.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { interleaveWritesAndReads } from '../helpers/cache.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation, waitForRun } from '../helpers/pipeline.ts';
import { redisUrl } from '../helpers/services.ts';

// Opened by the test once it has seen 40 %; made up front, so opening it before the step
// reaches its await is not lost.
let releaseGate!: () => void;
const gateReleased = new Promise<void>((resolve) => {
  releaseGate = resolve;
});

// Reports progress, then waits for the test: progress that changes no post, only the run.
registerStep({
  name: 'test-gated',
  description: 'Holds at 40 % until the test releases it.',
  async run({ progress }) {
    await progress(40);
    await gateReleased;
    await progress(80);
    return { output: { released: true } };
  },
});

let instanceA: TestApp;
let instanceB: TestApp;
let author: TestUser;
let otherAuthor: TestUser;
let admin: TestUser;

beforeAll(async () => {
  const env = {
    REDIS_URL: redisUrl,
    RATE_LIMIT_MUTATIONS: '1000',
    RATE_LIMIT_SEARCH: '3',
    RATE_LIMIT_START_PIPELINE: '1000',
  };
  instanceA = await startTestApp(env);
  instanceB = await startTestApp(env, instanceA);
  author = await createUser(instanceA.deps.db, 'AUTHOR', 'Ada');
  otherAuthor = await createUser(instanceA.deps.db, 'AUTHOR', 'Grace');
  admin = await createUser(instanceA.deps.db, 'ADMIN', 'Root');
});

afterAll(async () => {
  await instanceB?.close();
  await instanceA?.close();
});

const responseHits = (result: { extensions?: Record<string, any> }): number =>
  result.extensions!.cache.response?.hits ?? 0;

const readPost = `query($id: ID!) { post(id: $id) { title author { name } } }`;

describe('response cache across instances', () => {
  it('never serves a stale response: 200 interleaved writes through B and reads through A', async () => {
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id, title: 'v0' }]);
    const id = globalId('Post', post!.id);
    const { warm, afterWrite } = await interleaveWritesAndReads(
      instanceA,
      instanceB,
      id,
      author.token,
    );
    for (const read of afterWrite) expect(read.extensions!.sql.queries).toBeGreaterThan(0);
    // Every read that followed a read (no write between) was one cached response, no SQL.
    const hits = warm.reduce((sum, read) => sum + responseHits(read), 0);
    expect(hits).toBeGreaterThanOrEqual(199);
    const again = await instanceB.gql(readPost, { id }, { debug: true });
    expect(responseHits(again)).toBe(1);
    expect(again.extensions!.sql.queries).toBe(0);
  });

  it('shows each of many concurrent createPosts through B to the next read through A', async () => {
    // Concurrent writes share invalidation rounds (Cache.invalidate): each must still be applied
    // before its own answer.
    const profile = `query($id: ID!) { node(id: $id) { ... on User { posts(first: 3) { edges { node { title } } } } } }`;
    const authors = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        createUser(instanceA.deps.db, 'EDITOR', `W${index}`),
      ),
    );
    for (const writer of authors) {
      const id = globalId('User', writer.id);
      await instanceA.gql(profile, { id });
      expect(responseHits(await instanceA.gql(profile, { id }, { debug: true }))).toBe(1);
    }
    await Promise.all(
      authors.map(async (writer, index) => {
        const created = await instanceB.gql(
          `mutation($title: String!) { createPost(input: { title: $title, body: "x", status: PUBLISHED }) { post { id } } }`,
          { title: `Concurrent ${index}` },
          { token: writer.token },
        );
        expect(created.errors).toBeUndefined();
        const read = await instanceA.gql(profile, { id: globalId('User', writer.id) });
        expect(read.data!.node.posts.edges.map((edge: any) => edge.node.title)).toContain(
          `Concurrent ${index}`,
        );
      }),
    );
  });

  it('answers concurrent hits with one Redis read per event-loop turn, each its own entry', async () => {
    const seeds = [
      { authorId: author.id, title: 'Batched 1' },
      { authorId: author.id, title: 'Batched 2' },
      { authorId: author.id, status: 'DRAFT' as const, title: 'Batched draft' },
    ];
    const created = await createPosts(instanceA.deps.db, seeds);
    const posts = seeds.map((seed, index) => ({ ...seed, id: created[index]!.id }));
    const asks = posts.flatMap((post) =>
      [undefined, author.token].map((token) => ({ post, token })),
    );
    for (const { post, token } of asks) {
      await instanceA.gql(readPost, { id: globalId('Post', post.id) }, { token });
    }
    // MONITOR lists every command Redis runs, in order: the marker read last proves all the
    // requests' reads were listed before it.
    const prefix = `quire-test:${instanceA.database.name}:`;
    const marker = `${prefix}monitor-marker`;
    const monitor = await new Redis(redisUrl).monitor();
    const client = new Redis(redisUrl);
    const reads: string[][] = [];
    const markerSeen = new Promise<void>((resolve) => {
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args[1] === marker) resolve();
        else if (args[0]?.toLowerCase() === 'mget' && args[1]?.startsWith(prefix)) reads.push(args);
      });
    });
    try {
      const requests = Array.from({ length: 5 }, () => asks).flat();
      const results = await Promise.all(
        requests.map(({ post, token }) =>
          instanceA.gql(readPost, { id: globalId('Post', post.id) }, { token, debug: true }),
        ),
      );
      results.forEach((result, index) => {
        const { post, token } = requests[index]!;
        expect(responseHits(result)).toBe(1);
        // The draft only for its author: batched reads keep each viewer's entry apart.
        const visible = !('status' in post) || token !== undefined;
        expect(result.data!.post).toEqual(
          visible ? { title: post.title, author: { name: 'Ada' } } : null,
        );
      });
      await client.get(marker);
      await markerSeen;
      // Without batching: one MGET per request (30). Requests reach the cache in a few turns
      // (the author's token is looked up first).
      expect(reads.length).toBeGreaterThan(0);
      expect(reads.length).toBeLessThanOrEqual(requests.length / 5);
    } finally {
      client.disconnect();
      monitor.disconnect();
    }
  });

  it('sends a hit as the same bytes as the miss that stored it, debug extensions included', async () => {
    const title = 'Quoted "text", a \u2028 separator and 😀';
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id, title }]);
    const id = globalId('Post', post!.id);
    const body = async (instance: TestApp) => {
      const response = await instance.yoga.fetch('http://quire.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: readPost, variables: { id } }),
      });
      return response.text();
    };
    const miss = await body(instanceA);
    expect(JSON.parse(miss)).toEqual({ data: { post: { title, author: { name: 'Ada' } } } });
    // A hit here, a hit on the other instance: the stored text as yoga printed the miss.
    expect(await body(instanceA)).toBe(miss);
    expect(await body(instanceB)).toBe(miss);
    const debug = await instanceB.gql(readPost, { id }, { debug: true });
    expect(responseHits(debug)).toBe(1);
    expect(debug.data).toEqual(JSON.parse(miss).data);
    expect(debug.extensions!.sql.queries).toBe(0);
  });

  it('answers a damaged or foreign stored response as a miss, never as the body sent', async () => {
    const title = 'Corrupted entry';
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id, title }]);
    const id = globalId('Post', post!.id);
    const expected = { data: { post: { title, author: { name: 'Ada' } } } };
    const server = await startHttpServer(instanceA.yoga, httpOptions(instanceA.deps.config, 0));
    const client = new Redis(redisUrl);
    try {
      const ask = async (debug: boolean) => {
        const response = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(debug ? { 'x-quire-debug': '1' } : {}),
          },
          body: JSON.stringify({ query: readPost, variables: { id } }),
        });
        return { status: response.status, text: await response.text() };
      };
      expect(JSON.parse((await ask(false)).text)).toEqual(expected);
      // The entry as stored: `<stamp>\n<response JSON>`. Its stamp is kept current, so only the
      // response text is bad (another writer, a damaged value): truncated, then not an object.
      const prefix = `quire-test:${instanceA.database.name}:{cache}:e`;
      const keys = await client.keys(`${prefix.replace(/[{}]/g, '\\$&')}*:response:*`);
      const values = await Promise.all(keys.map((key) => client.get(key)));
      const index = values.findIndex((value) => value?.includes(title));
      expect(index).toBeGreaterThanOrEqual(0);
      const [stamp, stored] = values[index]!.split('\n') as [string, string];
      for (const damaged of [stored.slice(0, stored.length - 5), '"not a response"']) {
        for (const debug of [false, true]) {
          // Set before each ask: the miss it answers as stores the response again.
          await client.set(keys[index]!, `${stamp}\n${damaged}`, 'KEEPTTL');
          const { status, text } = await ask(debug);
          expect(status).toBe(200);
          expect(JSON.parse(text)).toMatchObject(expected);
        }
      }
      expect(await client.get(keys[index]!)).toBe(`${stamp}\n${stored}`);
    } finally {
      client.disconnect();
      await server.close();
    }
  });

  it('keys responses by viewer: a draft cached for its author reaches no one else', async () => {
    const [draft] = await createPosts(instanceA.deps.db, [
      { authorId: author.id, status: 'DRAFT', title: 'Secret' },
    ]);
    const id = globalId('Post', draft!.id);
    const query = `query($id: ID!) { post(id: $id) { title } viewer { name } }`;
    await instanceA.gql(query, { id }, { token: author.token });
    const cached = await instanceB.gql(query, { id }, { token: author.token, debug: true });
    expect(responseHits(cached)).toBe(1);
    expect(cached.data).toEqual({ post: { title: 'Secret' }, viewer: { name: 'Ada' } });
    for (const token of [undefined, otherAuthor.token]) {
      for (const instance of [instanceA, instanceB]) {
        const result = await instance.gql(query, { id }, { token, debug: true });
        expect(result.data!.post).toBeNull();
        expect(result.data!.viewer).toEqual(token ? { name: 'Grace' } : null);
      }
    }
  });

  it('drops cached responses on every kind of write: comments, tags, users, roles', async () => {
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id }]);
    const id = globalId('Post', post!.id);
    const postView = `query($id: ID!) { post(id: $id) { tags { name } comments(first: 10) { edges { node { body author { name role } } } } } }`;
    const users = `{ users(first: 100) { edges { node { name role postCount } } } }`;
    const warm = async (query: string, variables: Record<string, unknown> = {}) => {
      await instanceA.gql(query, variables);
      expect(responseHits(await instanceA.gql(query, variables, { debug: true }))).toBe(1);
    };

    await warm(postView, { id });
    await instanceB.gql(
      `mutation($id: ID!) { addComment(input: { postId: $id, body: "First!" }) { comment { id } } }`,
      { id },
      { token: otherAuthor.token },
    );
    const commented = await instanceA.gql(postView, { id });
    expect(commented.data!.post.comments.edges).toEqual([
      { node: { body: 'First!', author: { name: 'Grace', role: 'AUTHOR' } } },
    ]);

    await warm(postView, { id });
    await instanceB.gql(
      `mutation($id: ID!) { setPostTags(input: { postId: $id, tags: ["energy"] }) { post { id } } }`,
      { id },
      { token: author.token },
    );
    expect((await instanceA.gql(postView, { id })).data!.post.tags).toEqual([{ name: 'energy' }]);

    await warm(postView, { id });
    await warm(users);
    await instanceB.gql(
      `mutation($user: ID!) { setUserRole(input: { userId: $user, role: EDITOR }) { user { role } } }`,
      { user: otherAuthor.globalId },
      { token: admin.token },
    );
    expect(
      (await instanceA.gql(postView, { id })).data!.post.comments.edges[0].node.author.role,
    ).toBe('EDITOR');
    const afterRole = await instanceA.gql(users, {});
    expect(afterRole.data!.users.edges).toContainEqual({
      node: { name: 'Grace', role: 'EDITOR', postCount: 0 },
    });

    await warm(users);
    await instanceB.gql(
      `mutation { createUser(input: { email: "new@example.com", name: "Newcomer", role: AUTHOR }) { user { id } } }`,
      {},
      { token: admin.token },
    );
    expect(
      (await instanceA.gql(users, {})).data!.users.edges.map(
        (edge: { node: { name: string } }) => edge.node.name,
      ),
    ).toContain('Newcomer');
  });

  it('drops cached responses as a pipeline run, run by a worker, changes the post', async () => {
    const [post] = await createPosts(instanceA.deps.db, [
      { authorId: author.id, status: 'DRAFT', body: solarArticle },
    ]);
    const id = globalId('Post', post!.id);
    const view = `query($id: ID!) { post(id: $id) { status summary latestRun { status steps { name status } } } }`;
    const before = await instanceA.gql(view, { id }, { token: author.token });
    expect(before.data!.post).toMatchObject({ status: 'DRAFT', summary: null, latestRun: null });
    expect(
      responseHits(await instanceA.gql(view, { id }, { token: author.token, debug: true })),
    ).toBe(1);
    const started = await instanceB.gql(
      startPipelineMutation,
      { input: { postId: id } },
      { token: author.token },
    );
    const runId = localId(started.data!.startPipeline.pipelineRun.id);
    const queued = await instanceA.gql(view, { id }, { token: author.token });
    expect(queued.data!.post.latestRun.status).toBe('QUEUED');
    const worker = new PipelineWorker(instanceA.deps);
    await worker.start();
    try {
      await waitForRun(instanceA.deps.db, runId);
    } finally {
      await worker.stop();
    }
    const done = await instanceA.gql(view, { id }, { token: author.token });
    expect(done.data!.post.status).toBe('REVIEW');
    expect(done.data!.post.summary).toEqual(expect.stringContaining('olar'));
    expect(done.data!.post.latestRun.status).toBe('SUCCEEDED');
    expect(
      done.data!.post.latestRun.steps.every(
        (step: { status: string }) => step.status === 'SUCCEEDED',
      ),
    ).toBe(true);
  });

  it('drops cached responses on progress events that change only the run', async () => {
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: author.id }]);
    const id = globalId('Post', post!.id);
    const started = await instanceB.gql(
      startPipelineMutation,
      { input: { postId: id, steps: ['test-gated'] } },
      { token: author.token },
    );
    const runId = localId(started.data!.startPipeline.pipelineRun.id);
    const view = `query($id: ID!) { post(id: $id) { latestRun { steps { progress } } } }`;
    const progressSeen = async () =>
      (await instanceA.gql(view, { id }, { token: author.token })).data!.post.latestRun.steps[0]
        .progress as number;
    const progressReaches = async (percent: number) => {
      const deadline = Date.now() + 10_000;
      while ((await progressSeen()) < percent) {
        if (Date.now() > deadline) throw new Error(`progress never reached ${percent}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const worker = new PipelineWorker(instanceA.deps);
    await worker.start();
    try {
      await progressReaches(40);
      // The read that saw 40 % may have raced the 40 % event's own invalidation: read until the
      // 40 % answer is served from the cache.
      const cachedAt40 = async () => {
        const cached = await instanceA.gql(view, { id }, { token: author.token, debug: true });
        return responseHits(cached) === 1 && cached.data!.post.latestRun.steps[0].progress === 40;
      };
      const deadline = Date.now() + 5_000;
      while (!(await cachedAt40())) {
        if (Date.now() > deadline) throw new Error('the 40 % answer was never cached');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      releaseGate();
      // Well inside the 60 s TTL: only the invalidation can make the cached 40 % go away.
      await progressReaches(80);
      await waitForRun(instanceA.deps.db, runId);
    } finally {
      // A failure above must not leave the step parked on its gate and the worker's stop with it.
      releaseGate();
      await worker.stop();
    }
  });

  it('drops cached responses when `npm run seed` loads data into a running deployment', async () => {
    const list = `{ posts(first: 1, filter: { search: "graphql" }) { totalCount } }`;
    const before = (await instanceA.gql(list, {})).data!.posts.totalCount as number;
    expect(responseHits(await instanceA.gql(list, {}, { debug: true }))).toBe(1);
    await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/db/seed-cli.ts', '--users', '5', '--posts', '40', '--tags', '3'],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        env: {
          ...process.env,
          DATABASE_URL: instanceA.database.url,
          REDIS_URL: redisUrl,
          REDIS_PREFIX: instanceA.deps.config.REDIS_PREFIX,
          LOG_LEVEL: 'silent',
        },
      },
    );
    const after = (await instanceB.gql(list, {})).data!.posts.totalCount as number;
    expect(after).toBeGreaterThan(before);
  });

  it('never caches rate-limited fields, errors or API tokens', async () => {
    const search = `{ searchPosts(query: "anything") { edges { node { title } } } }`;
    for (let call = 1; call <= 3; call += 1) {
      const result = await instanceA.gql(search, {}, { token: otherAuthor.token, debug: true });
      expect(result.errors).toBeUndefined();
      expect(result.extensions!.cache.response).toBeUndefined();
    }
    const limited = await instanceA.gql(search, {}, { token: otherAuthor.token });
    expect(limited.errors![0]!.extensions!.code).toBe('RATE_LIMITED');

    const tokens = `{ viewer { apiTokens { name } } }`;
    await instanceA.gql(tokens, {}, { token: author.token });
    const tokenView = await instanceA.gql(tokens, {}, { token: author.token, debug: true });
    expect(tokenView.extensions!.cache.response).toBeUndefined();
    const tokenId = (
      await instanceA.gql('{ viewer { apiTokens { id } } }', {}, { token: author.token })
    ).data!.viewer.apiTokens[0].id;
    for (const read of [
      'query($id: ID!) { node(id: $id) { ... on ApiToken { revokedAt } } }',
      'query($id: ID!) { nodes(ids: [$id]) { ...T } } fragment T on ApiToken { lastUsedAt }',
    ]) {
      await instanceA.gql(read, { id: tokenId }, { token: author.token });
      const again = await instanceA.gql(
        read,
        { id: tokenId },
        { token: author.token, debug: true },
      );
      expect(again.extensions!.cache.response).toBeUndefined();
    }

    // An error raised while executing (an ID that does not decode is refused before that).
    const missing = `query($id: ID!) { post(id: $id, slug: "also-a-slug") { title } }`;
    const id = globalId('Post', '999999');
    const first = await instanceA.gql(missing, { id }, { debug: true });
    expect(first.errors?.length).toBeGreaterThan(0);
    const second = await instanceA.gql(missing, { id }, { debug: true });
    expect(second.errors).toEqual(first.errors);
    expect(responseHits(second)).toBe(0);
  });
});
