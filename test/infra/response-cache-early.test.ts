import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardManifestFile } from '../../src/dashboard/manifest.ts';
import { insertToken } from '../../src/modules/auth/auth.repository.ts';
import { hashToken } from '../../src/modules/auth/token.ts';
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

// A response-cache hit answered from onParams (src/plugins/response-cache.ts, `early`): the
// request line says `answeredEarly`. Every request here goes without the debug header, which
// always takes the whole path.

const { logger, send, warm } = httpInstances('early');
const env = { REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '1000' };

let a: Instance;
let b: Instance;
let author: TestUser;
let reader: TestUser;

beforeAll(async () => {
  ({ a, b } = await startInstancePair(env, logger));
  const first = a.app;
  author = await createUser(first.deps.db, 'AUTHOR', 'Ada');
  reader = await createUser(first.deps.db, 'AUTHOR', 'Grace');
  await createPosts(first.deps.db, [
    { authorId: author.id, title: 'Seed one' },
    { authorId: author.id, title: 'Seed two' },
    { authorId: author.id, title: 'Seed three' },
  ]);
});

afterAll(() => closeInstances(b, a));

const responseHits = (instance: Instance) => instance.app.deps.cache.totals.response?.hits ?? 0;

const myPosts = `query Mine($first: Int) { posts(first: $first) { edges { node { title status } } } }`;
const titles = (sent: Sent): string[] =>
  sent.body.data.posts.edges.map((edge: { node: { title: string } }) => edge.node.title);

async function tokenId(token: string): Promise<string> {
  const row = await a.app.deps.db
    .selectFrom('api_tokens')
    .select('id')
    .where('token_hash', '=', hashToken(token))
    .executeTakeFirstOrThrow();
  return globalId('ApiToken', row.id);
}

describe('early response-cache hits', () => {
  it('answer without executing: no SQL, one response hit, the same bytes and headers as the miss', async () => {
    const [post] = await createPosts(a.app.deps.db, [{ authorId: author.id, title: 'Early one' }]);
    const query = `query($id: ID!) { post(id: $id) { title author { name } } }`;
    const variables = { id: globalId('Post', post!.id) };
    const miss = await send(a, { query, variables });
    expect(miss.line.answeredEarly).toBeUndefined();
    expect(miss.line.sqlQueries).toBeGreaterThan(0);
    const hitsBefore = responseHits(a);
    const hit = await send(a, { query, variables });
    expect(hit.line).toMatchObject({ answeredEarly: true, sqlQueries: 0, status: 200 });
    expect(hit.line.operation).toBe('anonymous');
    expect(responseHits(a)).toBe(hitsBefore + 1);
    expect(hit.text).toBe(miss.text);
    expect(hit.body.data.post).toEqual({ title: 'Early one', author: { name: 'Ada' } });
    for (const header of ['content-type', 'vary', 'content-length'])
      expect(hit.headers.get(header)).toBe(miss.headers.get(header));
    expect(hit.headers.get('x-request-id')).toBe(hit.line.reqId);
  });

  it('name the operation in the request line and metrics, and gzip large bodies as the miss did', async () => {
    await createPosts(
      a.app.deps.db,
      Array.from({ length: 20 }, (_, index) => ({
        authorId: author.id,
        title: `A rather long title for a compressible list, number ${index}`,
      })),
    );
    const init = {
      query: myPosts,
      variables: { first: 20 },
      headers: { 'accept-encoding': 'gzip' },
    };
    const miss = await send(a, init);
    expect(miss.headers.get('content-encoding')).toBe('gzip');
    const hit = await warm(a, init);
    expect(hit.line.operation).toBe('Mine');
    expect(hit.headers.get('content-encoding')).toBe('gzip');
    expect(hit.headers.get('vary')).toBe(miss.headers.get('vary'));
    expect(hit.text).toBe(miss.text);
    const metrics = await (await fetch(a.url.replace('/graphql', '/metrics'))).text();
    expect(metrics).toMatch(/quire_graphql_request_duration_seconds_count\{[^}]*operation="Mine"/);
  });

  it('keep viewers apart: a draft answered early to its author reaches no other viewer', async () => {
    const writer = await createUser(a.app.deps.db, 'AUTHOR', 'Drafty');
    await createPosts(a.app.deps.db, [
      { authorId: writer.id, title: 'Secret draft', status: 'DRAFT' },
    ]);
    const query = `query($author: ID!) { posts(first: 5, filter: { authorId: $author }) { edges { node { title } } } }`;
    const variables = { author: writer.globalId };
    const own = await warm(a, { query, variables, token: writer.token });
    expect(titles(own)).toEqual(['Secret draft']);
    for (const token of [reader.token, undefined]) {
      await send(a, { query, variables, token });
      const other = await send(a, { query, variables, token });
      expect(titles(other)).toEqual([]);
    }
  });

  it('refuse a revoked token at once instead of serving its cached response', async () => {
    const holder = await createUser(a.app.deps.db, 'AUTHOR', 'Revoked');
    const { token: spare } = await insertToken(a.app.deps.db, holder.id, 'spare');
    await createPosts(a.app.deps.db, [
      { authorId: holder.id, title: 'Mine only', status: 'DRAFT' },
    ]);
    const query = `query($author: ID!) { posts(first: 5, filter: { authorId: $author }) { edges { node { title } } } }`;
    const variables = { author: holder.globalId };
    expect(titles(await warm(a, { query, variables, token: holder.token }))).toEqual(['Mine only']);
    expect(titles(await warm(b, { query, variables, token: holder.token }))).toEqual(['Mine only']);
    // Entries of another scope for the same request: a refused token must reach none of them.
    expect(titles(await warm(a, { query, variables }))).toEqual([]);
    expect(titles(await warm(b, { query, variables, token: reader.token }))).toEqual([]);
    const revoked = await send(b, {
      query: 'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { id } } }',
      variables: { id: await tokenId(holder.token) },
      token: spare,
    });
    expect(revoked.body.errors).toBeUndefined();
    for (const instance of [b, a]) {
      const refused = await send(instance, { query, variables, token: holder.token });
      expect(refused.status).toBe(401);
      expect(refused.body.data ?? null).toBeNull();
      expect(refused.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(refused.line.answeredEarly).toBeUndefined();
    }
    // The spare token of the same viewer shares the scope: its hits still answer early.
    expect(titles(await warm(a, { query, variables, token: spare }))).toEqual(['Mine only']);
  });

  it('never answer variables the whole path rejects, nor other variables with an entry of theirs', async () => {
    await warm(a, { query: myPosts, variables: { first: 2 } });
    const wrongType = await send(a, { query: myPosts, variables: { first: '2' } });
    expect(wrongType.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(wrongType.body.data).toBeUndefined();
    expect(wrongType.line.answeredEarly).toBeUndefined();
    const tooMany = await send(a, { query: myPosts, variables: { first: 100_000 } });
    expect(tooMany.body.errors?.length).toBeGreaterThan(0);
    expect(tooMany.line.answeredEarly).toBeUndefined();
    const three = await send(a, { query: myPosts, variables: { first: 3 } });
    expect(three.body.data.posts.edges).toHaveLength(3);
  });

  it('answer only variables this instance executed, even when another stored their entry', async () => {
    await warm(a, { query: myPosts, variables: { first: 1 } });
    const stored = await warm(b, { query: myPosts, variables: { first: 4 } });
    const hitsBefore = responseHits(a);
    const first = await send(a, { query: myPosts, variables: { first: 4 } });
    expect(first.line.answeredEarly).toBeUndefined();
    expect(responseHits(a)).toBe(hitsBefore + 1);
    expect(first.text).toBe(stored.text);
    expect((await send(a, { query: myPosts, variables: { first: 4 } })).line.answeredEarly).toBe(
      true,
    );
  });

  it('answer each operation of a document for itself, and refuse a missing or unknown name', async () => {
    const query = `query Newest { posts(first: 1) { edges { node { title } } } }
      query Two { posts(first: 2) { edges { node { title } } } }`;
    await warm(a, { query, operationName: 'Newest' });
    const two = await send(a, { query, operationName: 'Two' });
    expect(two.body.data.posts.edges).toHaveLength(2);
    expect(two.line.answeredEarly).toBeUndefined();
    expect(two.line.operation).toBe('Two');
    for (const operationName of [undefined, null, '', 'Newest\nquery', 'Nope']) {
      const refused = await send(a, { query, operationName });
      expect(refused.body.errors?.length).toBeGreaterThan(0);
      expect(refused.body.data ?? null).toBeNull();
      expect(refused.line.answeredEarly).toBeUndefined();
    }
  });

  it('leave params yoga refuses to yoga: an unknown parameter, variables that are not an object', async () => {
    const query = `query { posts(first: 1) { edges { node { title } } } }`;
    await warm(a, { query });
    const unknown = await send(a, { query, more: { cacheMe: true } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.data).toBeUndefined();
    expect(unknown.line.answeredEarly).toBeUndefined();
    const listed = await send(a, { query, variables: [] });
    expect(listed.status).toBe(400);
    expect(listed.line.answeredEarly).toBeUndefined();
  });

  it('run a mutation every time it is sent, never as an early answer', async () => {
    // The same text and variables twice: the second reaches Postgres (the slug exists by then).
    const mutation = `mutation { createPost(input: { title: "Twice", body: "x", status: DRAFT }) { post { id } } }`;
    const first = await send(a, { query: mutation, token: author.token });
    expect(first.body.errors).toBeUndefined();
    const second = await send(a, { query: mutation, token: author.token });
    expect(second.body.errors[0].extensions.code).toBe('CONFLICT');
    expect(second.line.answeredEarly).toBeUndefined();
  });

  it('answer a GET as its POST did, and leave SSE and the debug header to the whole path', async () => {
    const query = `query { posts(first: 2) { edges { node { title } } } }`;
    const post = await warm(a, { query });
    const get = await send(a, { query, method: 'GET' });
    expect(get.line.answeredEarly).toBe(true);
    expect(get.text).toBe(post.text);
    expect(get.headers.get('content-type')).toBe(post.headers.get('content-type'));
    const sse = await send(a, { query, headers: { accept: 'text/event-stream' } });
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(sse.text).toContain(`data: ${post.text}`);
    expect(sse.line.answeredEarly).toBeUndefined();
    const debug = await send(a, { query, headers: { 'x-quire-debug': '1' } });
    expect(debug.body.extensions.cache.response.hits).toBe(1);
    expect(debug.line.answeredEarly).toBeUndefined();
  });

  it('show a write through another instance to the next early read', async () => {
    const query = `query($author: ID!) { posts(first: 5, filter: { authorId: $author }) { edges { node { title } } } }`;
    const writer = await createUser(a.app.deps.db, 'EDITOR', 'Writer');
    const variables = { author: writer.globalId };
    for (let round = 0; round < 5; round += 1) {
      await warm(a, { query, variables });
      const created = await send(b, {
        query: `mutation($title: String!) { createPost(input: { title: $title, body: "x", status: PUBLISHED }) { post { id } } }`,
        variables: { title: `Round ${round}` },
        token: writer.token,
      });
      expect(created.body.errors).toBeUndefined();
      const read = await send(a, { query, variables });
      expect(read.line.answeredEarly).toBeUndefined();
      expect(titles(read)).toContain(`Round ${round}`);
    }
  });

  it('answer a trusted operation sent by hash early, and still refuse its text sent raw', async () => {
    const trusted = await serveInstance(
      await startTestApp(
        { ...env, TRUSTED_DOCUMENTS: fileURLToPath(dashboardManifestFile) },
        a.app,
        logger,
      ),
    );
    try {
      const manifest = JSON.parse(readFileSync(dashboardManifestFile, 'utf8')) as Record<
        string,
        string
      >;
      const query = Object.values(manifest).find((text) => text.startsWith('query Posts('))!;
      const sha256Hash = createHash('sha256').update(query).digest('hex');
      const byHash = { extensions: { persistedQuery: { version: 1, sha256Hash } } };
      await send(trusted, byHash);
      await send(trusted, byHash);
      // The same text and variables, raw: trusted mode refuses it before any early answer.
      const raw = await send(trusted, { query });
      expect(raw.body.errors[0].extensions.code).toBe('PERSISTED_QUERY_ONLY');
      expect(raw.body.data).toBeUndefined();
      expect(raw.line.answeredEarly).toBeUndefined();
      const hit = await warm(trusted, byHash);
      expect(hit.body.data.posts.edges.length).toBeGreaterThan(0);
    } finally {
      await trusted.http.close();
      await trusted.app.close();
    }
  });

  it('fall through to execution, one failed Redis read per request, while Redis is away', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
    await proxy.start();
    const behind = await serveInstance(
      await startTestApp({ ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, a.app, logger),
    );
    try {
      await untilRedisReachable(behind.app);
      const [post] = await createPosts(a.app.deps.db, [{ authorId: author.id, title: 'Sturdy' }]);
      const init = {
        query: `query($id: ID!) { post(id: $id) { title } }`,
        variables: { id: globalId('Post', post!.id) },
      };
      await warm(behind, init);
      await proxy.stop();
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const errorsBefore = behind.app.deps.cache.totals.response?.errors ?? 0;
        const sent = await send(behind, init);
        expect(sent.body).toEqual({ data: { post: { title: 'Sturdy' } } });
        expect(sent.line.answeredEarly).toBeUndefined();
        expect(sent.line.sqlQueries).toBeGreaterThan(0);
        expect(behind.app.deps.cache.totals.response!.errors).toBe(errorsBefore + 1);
      }
    } finally {
      await behind.http.close();
      await behind.app.close();
      await proxy.stop();
    }
  });
});
