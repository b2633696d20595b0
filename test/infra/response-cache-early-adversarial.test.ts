import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import {
  closeInstances,
  httpInstances,
  type Instance,
  type Sent,
  serveInstance,
  startInstancePair,
} from '../helpers/http-instances.ts';
import { untilRedisReachable } from '../helpers/redis-ready.ts';
import { redisUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

// Requests built to make an early response-cache hit (src/plugins/response-cache.ts, `early`)
// answer what the whole path would not: another viewer's or role's entry, other variables'
// entry, a request the whole path refuses, or different HTTP framing. A miss is always fine.
// response-cache-early.test.ts has the plain cases; these are the adversarial ones.

const { logger, send, warm } = httpInstances('adv');
const env = {
  REDIS_URL: redisUrl,
  REDIS_COMMAND_TIMEOUT_MS: '50',
  RATE_LIMIT_MUTATIONS: '1000',
  RATE_LIMIT_SEARCH: '1000',
};

let a: Instance;
let b: Instance;
let writer: TestUser;
let reader: TestUser;
let admin: TestUser;
let draftTitle: string;

beforeAll(async () => {
  ({ a, b } = await startInstancePair(env, logger));
  const first = a.app;
  writer = await createUser(first.deps.db, 'AUTHOR', 'Wren');
  reader = await createUser(first.deps.db, 'AUTHOR', 'Rhea');
  admin = await createUser(first.deps.db, 'ADMIN', 'Ada Admin');
  draftTitle = `Hidden draft ${Math.random().toString(36).slice(2)}`;
  await createPosts(first.deps.db, [
    { authorId: writer.id, title: 'Open one', body: 'Body one' },
    { authorId: writer.id, title: 'Open two', body: 'Body two' },
    { authorId: writer.id, title: draftTitle, status: 'DRAFT' },
  ]);
});

afterAll(() => closeInstances(b, a));

const titles = (sent: Sent): string[] =>
  sent.body.data.posts.edges.map((edge: { node: { title: string } }) => edge.node.title);

describe('early response-cache hits against adversarial requests', () => {
  it('answer a viewer whose role changed with the new role, on both instances', async () => {
    const promoted = await createUser(a.app.deps.db, 'AUTHOR', 'Soon editor');
    const query = `query($author: ID!, $first: Int) { viewer { name role } posts(first: $first, filter: { authorId: $author }) { edges { node { title } } } }`;
    const variables = { author: writer.globalId, first: 5 };
    for (const instance of [a, b]) {
      const before = await warm(instance, { query, variables, token: promoted.token });
      expect(before.body.data.viewer.role).toBe('AUTHOR');
      expect(titles(before)).not.toContain(draftTitle);
    }
    const changed = await send(a, {
      query: `mutation($id: ID!) { setUserRole(input: { userId: $id, role: EDITOR }) { user { role } } }`,
      variables: { id: promoted.globalId },
      token: admin.token,
    });
    expect(changed.body.errors).toBeUndefined();
    for (const instance of [b, a]) {
      const after = await send(instance, { query, variables, token: promoted.token });
      // The first instance executes for the new scope; the second may answer its entry early.
      if (instance === b) expect(after.line.answeredEarly).toBeUndefined();
      expect(after.body.data.viewer.role).toBe('EDITOR');
      // What an editor may see: the draft the author role could not.
      expect(titles(after)).toContain(draftTitle);
    }
  });

  it('never serve one key order the entry of another order, GET or POST', async () => {
    const query = `query($first: Int, $author: ID!) { posts(first: $first, filter: { authorId: $author }) { edges { node { title } } } }`;
    // Two requests whose values differ but whose sorted keys would collide if keys were sorted
    // and values swapped: each must get its own answer.
    await warm(a, {
      query,
      rawVariables: `{"first":1,"author":${JSON.stringify(writer.globalId)}}`,
    });
    for (const method of ['POST', 'GET'] as const) {
      const reordered = await send(a, {
        method,
        query,
        rawVariables: `{"author":${JSON.stringify(writer.globalId)},"first":2}`,
      });
      expect(titles(reordered)).toHaveLength(2);
      const same = await send(a, {
        method,
        query,
        rawVariables: `{"author":${JSON.stringify(writer.globalId)},"first":1}`,
      });
      expect(titles(same)).toHaveLength(1);
      // Another viewer's scope with the same variables: never the anonymous entry's draft-free
      // answer nor the writer's own drafts for someone else.
      const own = await send(a, {
        method,
        query,
        token: writer.token,
        rawVariables: `{"first":5,"author":${JSON.stringify(writer.globalId)}}`,
      });
      expect(titles(own)).toContain(draftTitle);
      const other = await send(a, {
        method,
        query,
        token: reader.token,
        rawVariables: `{"first":5,"author":${JSON.stringify(writer.globalId)}}`,
      });
      expect(titles(other)).not.toContain(draftTitle);
    }
  });

  it('answer @include/@skip by the variables sent, never the entry of the other branch', async () => {
    const query = `query($author: ID!, $withBody: Boolean!) { posts(first: 2, filter: { authorId: $author }) { edges { node { title body @include(if: $withBody) status @skip(if: $withBody) } } } }`;
    const without = await warm(a, {
      query,
      variables: { author: writer.globalId, withBody: false },
    });
    expect(without.body.data.posts.edges[0].node).toHaveProperty('status');
    expect(without.body.data.posts.edges[0].node).not.toHaveProperty('body');
    const withBody = await send(a, {
      query,
      variables: { author: writer.globalId, withBody: true },
    });
    expect(withBody.line.answeredEarly).toBeUndefined();
    expect(withBody.body.data.posts.edges[0].node.body).toMatch(/^Body /);
    expect(withBody.body.data.posts.edges[0].node).not.toHaveProperty('status');
    const again = await warm(a, { query, variables: { author: writer.globalId, withBody: true } });
    expect(again.text).toBe(withBody.text);
    expect(
      (await send(a, { query, variables: { author: writer.globalId, withBody: false } })).text,
    ).toBe(without.text);
  });

  it('answer operationName null and absent alike, and refuse an empty one as the whole path does', async () => {
    const query = `query { posts(first: 1) { edges { node { title } } } }`;
    const absent = await warm(a, { query });
    const nulled = await warm(a, { query, operationName: null });
    expect(nulled.text).toBe(absent.text);
    const empty = await send(a, { query, operationName: '' });
    expect(empty.line.answeredEarly).toBeUndefined();
    expect(empty.body.data ?? null).toBeNull();
    expect(empty.body.errors?.length).toBeGreaterThan(0);
  });

  it('ignore foreign extensions as the whole path does, but never skip an APQ hash check', async () => {
    const query = `query { posts(first: 2) { edges { node { title } } } }`;
    const plain = await warm(a, { query });
    const foreign = await warm(a, { query, extensions: { tracing: true, clientName: 'x' } });
    expect(foreign.text).toBe(plain.text);
    const mismatch = await send(a, {
      query,
      extensions: { persistedQuery: { version: 1, sha256Hash: '0'.repeat(64) } },
    });
    expect(mismatch.line.answeredEarly).toBeUndefined();
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors[0].extensions.code).toBe('PERSISTED_QUERY_MISMATCH');
    expect(mismatch.body.data).toBeUndefined();
  });

  it('refuse a batch (batching is off) even of a warm text', async () => {
    const query = `query { posts(first: 3) { edges { node { title } } } }`;
    await warm(a, { query });
    const batch = await send(a, { rawBody: JSON.stringify([{ query }, { query }]) });
    expect(batch.status).toBeGreaterThanOrEqual(400);
    expect(batch.line?.answeredEarly).toBeUndefined();
  });

  it('never answer introspection or a rate-limited field early', async () => {
    for (const query of [
      `query { __schema { queryType { name } } }`,
      `query { __type(name: "Post") { name } }`,
      `query { searchPosts(query: "Open") { totalCount } }`,
    ]) {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const sent = await send(a, { query });
        expect(sent.body.errors).toBeUndefined();
        expect(sent.line.answeredEarly).toBeUndefined();
      }
    }
  });

  it('count every rate-limited call, through an alias and a fragment on Query, never answering one early', async () => {
    const limited = await serveInstance(
      await startTestApp({ ...env, RATE_LIMIT_SEARCH: '3' }, a.app, logger),
    );
    try {
      const query = `query { ...Find } fragment Find on Query { found: searchPosts(query: "Open") { totalCount } }`;
      const codes: string[] = [];
      for (let attempt = 0; attempt < 6; attempt += 1) {
        const sent = await send(limited, { query });
        expect(sent.line.answeredEarly).toBeUndefined();
        codes.push(sent.body.errors?.[0]?.extensions?.code ?? 'OK');
      }
      // The limiter's own edge is not at issue here: once refused, every later call is refused.
      expect(codes[0]).toBe('OK');
      expect(codes.slice(-2)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
      expect(limited.app.deps.cache.totals.response?.hits ?? 0).toBe(0);
    } finally {
      await limited.http.close();
      await limited.app.close();
    }
  });

  it('keep answering right past the memo bounds: more texts than remembered, a text too long to remember', async () => {
    const first = `query { posts(first: 1) { edges { node { title } } } }`;
    const expected = await warm(a, { query: first });
    // More texts than remembered (256): every one still answers its own data.
    for (let index = 0; index < 300; index += 1) {
      const sent = await send(a, {
        query: `query Q${index} { posts(first: 1) { edges { node { title } } } }`,
      });
      expect(sent.body.data.posts.edges).toHaveLength(1);
    }
    const back = await warm(a, { query: first });
    expect(back.text).toBe(expected.text);
    // A text past 8192 characters is never remembered, so never answered early.
    const long = `query { posts(first: 1) { edges { node { title } } } }${' '.repeat(9000)}`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const sent = await send(a, { query: long });
      expect(sent.body.data.posts.edges).toHaveLength(1);
      expect(sent.line.answeredEarly).toBeUndefined();
    }
  });

  it('frame an early hit as the whole path frames a hit: status and headers, plain and gzip', async () => {
    const headerSets: Record<string, string>[] = [
      {},
      { 'accept-encoding': 'gzip' },
      { accept: 'application/json' },
    ];
    for (const headers of headerSets) {
      const [post] = await createPosts(a.app.deps.db, [
        { authorId: writer.id, title: 'Framed '.repeat(20) },
      ]);
      const init = {
        query: `query($id: ID!) { post(id: $id) { title } }`,
        variables: { id: globalId('Post', post!.id) },
        headers,
      };
      await send(a, init);
      // b never executed these params: its first read is a hit on the whole path.
      const whole = await send(b, init);
      expect(whole.line.answeredEarly).toBeUndefined();
      const early = await send(b, init);
      expect(early.line.answeredEarly).toBe(true);
      expect(early.status).toBe(whole.status);
      expect(early.text).toBe(whole.text);
      const names = (sent: Sent) =>
        [...sent.headers.keys()].filter((name) => !['date', 'x-request-id'].includes(name)).sort();
      expect(names(early)).toEqual(names(whole));
      for (const name of names(whole))
        expect(early.headers.get(name)).toBe(whole.headers.get(name));
    }
  });

  it('negotiate the response type of an early hit as the whole path does, refusals included', async () => {
    const accepts = [
      ['text/plain', 406],
      ['application/graphql-response+json', 200],
      ['application/xml', 406],
    ] as const;
    for (const [index, [accept, status]] of accepts.entries()) {
      const query = `query { posts(first: ${index + 5}) { edges { node { title } } } }`;
      await warm(a, { query });
      // b has not executed this text: its answer is the whole path's; a's may be early.
      const whole = await send(b, { query, headers: { accept } });
      expect(whole.line.answeredEarly).toBeUndefined();
      const early = await send(a, { query, headers: { accept } });
      expect(early.status).toBe(status);
      expect(early.status).toBe(whole.status);
      expect(early.headers.get('content-type')).toBe(whole.headers.get('content-type'));
      expect(early.text).toBe(whole.text);
    }
  });

  it('fall through while Redis is frozen (not down), then answer right once it thaws', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
    await proxy.start();
    const behind = await serveInstance(
      await startTestApp({ ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, a.app, logger),
    );
    try {
      await untilRedisReachable(behind.app);
      const [post] = await createPosts(a.app.deps.db, [
        { authorId: writer.id, title: 'Before freeze' },
      ]);
      const id = globalId('Post', post!.id);
      const init = { query: `query($id: ID!) { post(id: $id) { title } }`, variables: { id } };
      await warm(behind, init);
      proxy.freeze();
      // Written through the other instance while this one cannot hear of it.
      const updated = await send(a, {
        query: `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }`,
        variables: { input: { id, title: 'After freeze' } },
        token: writer.token,
      });
      expect(updated.body.errors).toBeUndefined();
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const sent = await send(behind, init);
        expect(sent.body).toEqual({ data: { post: { title: 'After freeze' } } });
        expect(sent.line.answeredEarly).toBeUndefined();
      }
      proxy.unfreeze();
      // Replies held while frozen arrive late: none may be read as another request's answer.
      const deadline = Date.now() + 5000;
      let early = false;
      while (!early && Date.now() < deadline) {
        const sent = await send(behind, init);
        expect(sent.body).toEqual({ data: { post: { title: 'After freeze' } } });
        early = sent.line.answeredEarly === true;
        if (!early) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(early).toBe(true);
    } finally {
      proxy.unfreeze();
      await behind.http.close();
      await behind.app.close();
      await proxy.stop();
    }
  });
});

describe('stored entries and refusals', () => {
  /** The Redis key of `instance`'s one response entry whose text holds `marker`. */
  async function entryKeyHolding(redis: Redis, instance: Instance, marker: string) {
    const pattern = `quire-test:${instance.app.database.name}:{cache}:e*:response:*`;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of batch) if ((await redis.get(key))?.includes(marker)) keys.push(key);
    } while (cursor !== '0');
    expect(keys).toHaveLength(1);
    return keys[0]!;
  }

  it('replace a damaged entry on the next request, which then answers early again', async () => {
    const redis = new Redis(redisUrl);
    try {
      // No stamp that parses; a stamp with a truncated response after it.
      for (const damage of ['garbage', '{}\n{"data":{"post":']) {
        const title = `Damaged ${Math.random().toString(36).slice(2)}`;
        const [post] = await createPosts(a.app.deps.db, [{ authorId: writer.id, title }]);
        const init = {
          query: `query($id: ID!) { post(id: $id) { title } }`,
          variables: { id: globalId('Post', post!.id) },
        };
        const stored = await warm(a, init);
        const key = await entryKeyHolding(redis, a, title);
        await redis.set(key, damage, 'KEEPTTL');
        const repairing = await send(a, init);
        expect(repairing.body).toEqual(stored.body);
        expect(repairing.line.answeredEarly).toBeUndefined();
        const entry = (await redis.get(key)) ?? '';
        expect(entry.slice(entry.indexOf('\n') + 1)).toBe(stored.text);
        expect(await redis.ttl(key)).toBeGreaterThan(0);
        const after = await send(a, init);
        expect(after.line.answeredEarly).toBe(true);
        expect(after.text).toBe(stored.text);
      }
    } finally {
      redis.disconnect();
    }
  });

  it('refuse with 406 an Accept no result type serves, before any cache read or SQL', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
    await proxy.start();
    const behind = await serveInstance(
      await startTestApp({ ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, a.app, logger),
    );
    try {
      await untilRedisReachable(behind.app);
      const query = `query { posts(first: 3) { edges { node { title } } } }`;
      await warm(behind, { query });
      for (const accept of ['application/xml', 'text/html', 'application/json; charset=latin1']) {
        const before = proxy.bytesToService;
        const refused = await send(behind, { query, headers: { accept } });
        expect(refused.status).toBe(406);
        expect(refused.text).toBe('');
        expect(refused.line).toMatchObject({ status: 406, sqlQueries: 0 });
        expect(proxy.bytesToService).toBe(before);
      }
      // Its acceptable types are still served, early.
      const served = await warm(behind, { query, headers: { accept: 'text/xml, */*;q=0.1' } });
      expect(served.status).toBe(200);
      // A mutation refused so is not executed: no post written for a client told it was refused.
      const title = `Refused ${Math.random().toString(36).slice(2)}`;
      const mutation = await send(behind, {
        query: `mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }`,
        variables: { input: { title, body: 'x' } },
        token: writer.token,
        headers: { accept: 'application/xml' },
      });
      expect(mutation.status).toBe(406);
      const rows = await a.app.deps.db
        .selectFrom('posts')
        .select('id')
        .where('title', '=', title)
        .execute();
      expect(rows).toEqual([]);
    } finally {
      await behind.http.close();
      await behind.app.close();
      await proxy.stop();
    }
  });
});
