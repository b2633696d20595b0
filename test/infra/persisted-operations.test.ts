import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { dashboardManifestFile } from '../../src/dashboard/manifest.ts';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { documentHash, loadTrustedDocuments } from '../../src/plugins/persisted-operations.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type StreamedResult, take, wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { untilRedisReachable } from '../helpers/redis-ready.ts';
import { redisUrl } from '../helpers/services.ts';

const MUTATION_LIMIT = 3;
const SEARCH_LIMIT = 2;
const limits = {
  REDIS_URL: redisUrl,
  RATE_LIMIT_MUTATIONS: String(MUTATION_LIMIT),
  RATE_LIMIT_SEARCH: String(SEARCH_LIMIT),
};
const TRUSTED_DOCUMENTS = fileURLToPath(dashboardManifestFile);
const accept = 'application/graphql-response+json';

let instanceA: TestApp;
let instanceB: TestApp;
let trusted: TestApp;
let trustedHttp: HttpServer;
let apqHttp: HttpServer;
let author: TestUser;

beforeAll(async () => {
  instanceA = await startTestApp(limits);
  instanceB = await startTestApp(limits, instanceA);
  trusted = await startTestApp({ ...limits, TRUSTED_DOCUMENTS }, instanceA);
  await untilRedisReachable(instanceA, instanceB, trusted);
  apqHttp = await startHttpServer(instanceA.yoga, httpOptions(instanceA.deps.config, 0));
  trustedHttp = await startHttpServer(trusted.yoga, httpOptions(trusted.deps.config, 0));
  author = await createUser(instanceA.deps.db, 'AUTHOR', 'Ada');
  await createPosts(instanceA.deps.db, [
    {
      authorId: author.id,
      title: 'Persisted solar roofs',
      body: 'Solar panels',
      status: 'PUBLISHED',
    },
  ]);
});

afterAll(async () => {
  await trustedHttp?.close();
  await apqHttp?.close();
  await trusted?.close();
  await instanceB?.close();
  await instanceA?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, any> | null;
    errors?: { message: string; extensions?: Record<string, any> }[];
    extensions?: Record<string, any>;
  };
}

interface Params {
  query?: string;
  variables?: Record<string, unknown>;
  operationName?: string;
  extensions?: Record<string, unknown>;
}

const persisted = (document: string) => ({
  persistedQuery: { version: 1, sha256Hash: documentHash(document) },
});

/** The APQ protocol's first request: the hash alone. */
const hashOnly = (document: string, variables?: Record<string, unknown>): Params => ({
  variables,
  extensions: persisted(document),
});

/** The APQ protocol's second request (after PersistedQueryNotFound): hash and text. */
const hashAndText = (document: string, variables?: Record<string, unknown>): Params => ({
  query: document,
  variables,
  extensions: persisted(document),
});

async function send(
  app: TestApp,
  params: Params,
  options: { method?: 'GET' | 'POST'; token?: string; debug?: boolean } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    accept,
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...(options.debug ? { 'x-quire-debug': '1' } : {}),
  };
  let response: Response;
  if (options.method === 'GET') {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined)
        search.set(name, typeof value === 'string' ? value : JSON.stringify(value));
    }
    response = await app.yoga.fetch(`http://quire.test/graphql?${search}`, { headers });
  } else {
    response = await app.yoga.fetch('http://quire.test/graphql', {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(params),
    });
  }
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const codesOf = (answer: Answer) =>
  (answer.body.errors ?? []).map((error) => error.extensions?.code);

async function sqlStatements(app: TestApp): Promise<number> {
  return (await app.deps.metrics.sqlStatements.get()).values[0]?.value ?? 0;
}

/**
 * The first result of a graphql-ws subscription: an error the server answers to the subscribe
 * (graphql-ws rejects the iterator with the list) reads as `{ errors }`.
 */
async function firstWsResult(...args: Parameters<typeof wsSubscribe>): Promise<StreamedResult> {
  const iterator = wsSubscribe(...args);
  try {
    const [first] = await take(iterator, 1);
    return first!;
  } catch (error) {
    if (Array.isArray(error)) return { errors: error };
    throw error;
  } finally {
    await iterator.dispose();
  }
}

const wsCodes = (result: StreamedResult) => result.errors?.map((error) => error.extensions?.code);

/** A document no other test sends, so its hash starts unregistered. */
let unique = 0;
const freshQuery = () => `query Fresh${++unique} { posts(first: 1) { totalCount } }`;

// Mutation documents, in one place: their shape follows the schema's mutation convention.
const createPost =
  'mutation Write($title: String!) { createPost(input: { title: $title, body: "x" }) { post { id } } }';

describe('automatic persisted queries', () => {
  it('answers a hash it has not seen with PersistedQueryNotFound (404), which clients understand', async () => {
    const answer = await send(instanceA, hashOnly(freshQuery()));
    expect(answer.status).toBe(404);
    expect(answer.body.errors).toEqual([
      { message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
    ]);
    expect(answer.body).not.toHaveProperty('data');
  });

  it('registers hash + text, then runs the hash alone on every instance, over POST and GET', async () => {
    const query = freshQuery();
    const registered = await send(instanceA, hashAndText(query));
    expect(registered.status).toBe(200);
    expect(registered.body).toEqual({ data: { posts: { totalCount: 1 } } });

    for (const app of [instanceA, instanceB]) {
      const hit = await send(app, hashOnly(query));
      expect(hit.body).toEqual({ data: { posts: { totalCount: 1 } } });
    }
    // A hash in the URL is what lets a CDN cache a query: GET carries the same protocol.
    const get = await send(instanceB, hashOnly(query), { method: 'GET' });
    expect(get.status).toBe(200);
    expect(get.body).toEqual({ data: { posts: { totalCount: 1 } } });
  });

  it('registers over GET too, with variables', async () => {
    const query = `query ByTitle${++unique}($first: Int) { posts(first: $first) { edges { node { title } } } }`;
    const variables = { first: 1 };
    expect(codesOf(await send(instanceA, hashOnly(query, variables), { method: 'GET' }))).toEqual([
      'PERSISTED_QUERY_NOT_FOUND',
    ]);
    const registered = await send(instanceA, hashAndText(query, variables), { method: 'GET' });
    expect(registered.body.data?.posts.edges).toEqual([
      { node: { title: 'Persisted solar roofs' } },
    ]);
    const hit = await send(instanceB, hashOnly(query, variables), { method: 'GET' });
    expect(hit.body).toEqual(registered.body);
  });

  it('refuses a hash that is not the SHA-256 of the text, and registers nothing', async () => {
    const query = freshQuery();
    const other = freshQuery();
    const answer = await send(instanceA, { query, extensions: persisted(other) });
    expect(answer.status).toBe(400);
    expect(codesOf(answer)).toEqual(['PERSISTED_QUERY_MISMATCH']);
    expect(codesOf(await send(instanceB, hashOnly(other)))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    expect(codesOf(await send(instanceB, hashOnly(query)))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
  });

  it('still runs plain text, and ignores a malformed hash as not found', async () => {
    const plain = await send(instanceA, { query: '{ posts(first: 1) { totalCount } }' });
    expect(plain.body).toEqual({ data: { posts: { totalCount: 1 } } });
    const malformed = await send(instanceA, {
      extensions: { persistedQuery: { version: 1, sha256Hash: '../../etc/passwd' } },
    });
    expect(codesOf(malformed)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
  });

  it('keeps its registrations under REDIS_PREFIX', async () => {
    const query = freshQuery();
    await send(instanceA, hashAndText(query));
    const redis = (await import('ioredis')).Redis;
    const client = new redis(redisUrl);
    try {
      const prefix = instanceA.deps.config.REDIS_PREFIX;
      expect(await client.get(`${prefix}apq:${documentHash(query)}`)).toBe(query);
      expect(await client.ttl(`${prefix}apq:${documentHash(query)}`)).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it('with Redis down answers not found (never an error of its own), and text still runs', async () => {
    const down = await startTestApp({ REDIS_URL: 'redis://127.0.0.1:1' }, instanceA);
    try {
      const query = freshQuery();
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const miss = await send(down, hashOnly(query));
        expect(miss.status).toBe(404);
        expect(codesOf(miss)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
        const resent = await send(down, hashAndText(query));
        expect(resent.body).toEqual({ data: { posts: { totalCount: 1 } } });
      }
    } finally {
      await down.close();
    }
  });

  it('counts a hashed mutation against RATE_LIMIT_MUTATIONS like its text', async () => {
    const writer = await createUser(instanceA.deps.db, 'AUTHOR');
    const write = (title: string) => ({ title: `counted by hash ${title}` });
    expect(
      codesOf(await send(instanceA, hashOnly(createPost, write('0')), { token: writer.token })),
    ).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    const outcomes: (string | undefined)[] = [];
    const registered = await send(instanceA, hashAndText(createPost, write('1')), {
      token: writer.token,
    });
    outcomes.push(codesOf(registered)[0] ?? 'OK');
    for (let call = 2; call <= MUTATION_LIMIT + 1; call += 1) {
      // Alternating instances: the budget is shared through Redis, as the registrations are.
      const app = call % 2 === 0 ? instanceB : instanceA;
      const hit = await send(app, hashOnly(createPost, write(String(call))), {
        token: writer.token,
      });
      outcomes.push(codesOf(hit)[0] ?? 'OK');
      if (hit.status === 429) expect(hit.headers.get('retry-after')).toMatch(/^\d+$/);
    }
    expect(outcomes).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED']);
  });

  it('refuses a hashed mutation over GET with 405, as it refuses its text', async () => {
    const writer = await createUser(instanceA.deps.db, 'AUTHOR');
    const variables = { title: 'never over GET' };
    await send(instanceA, hashAndText(createPost, variables), { token: writer.token });
    for (const params of [hashOnly(createPost, variables), hashAndText(createPost, variables)]) {
      const answer = await send(instanceB, params, { method: 'GET', token: writer.token });
      expect(answer.status).toBe(405);
      expect(answer.headers.get('allow')).toBe('POST');
    }
    const written = await instanceA.deps.db
      .selectFrom('posts')
      .where('title', '=', 'never over GET')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    expect(Number(written.count)).toBe(1);
  });

  it('counts a hashed search against RATE_LIMIT_SEARCH like its text', async () => {
    const reader = await createUser(instanceA.deps.db, 'VIEWER');
    const search = 'query Search { searchPosts(query: "solar") { totalCount } }';
    const outcomes = [
      await send(instanceA, { query: search }, { token: reader.token }),
      await send(instanceA, hashAndText(search), { token: reader.token }),
      await send(instanceB, hashOnly(search), { token: reader.token }),
    ].map((answer) => codesOf(answer)[0] ?? 'OK');
    expect(outcomes).toEqual(['OK', 'OK', 'RATE_LIMITED']);
  });

  it('applies the query limits to a hashed document as to its text', async () => {
    const aliases = Array.from(
      { length: instanceA.deps.config.MAX_QUERY_ALIASES + 1 },
      (_, i) => `a${i}: viewer { id }`,
    );
    const query = `query TooWide { ${aliases.join(' ')} }`;
    const asText = await send(instanceA, { query });
    const registering = await send(instanceA, hashAndText(query));
    const asHash = await send(instanceB, hashOnly(query));
    expect(codesOf(asText)).toEqual(['QUERY_TOO_COMPLEX']);
    expect(registering).toEqual({ ...asText, headers: registering.headers });
    expect(asHash).toEqual({ ...asText, headers: asHash.headers });
  });

  it('serves a hashed query from the response cache its text filled', async () => {
    const query = `query Cached${++unique} { posts(first: 5) { edges { node { title } } } }`;
    const text = await send(instanceA, { query }, { debug: true });
    expect(text.body.extensions?.cache.response).toMatchObject({ misses: 1 });
    await send(instanceA, hashAndText(query));
    const hashed = await send(instanceB, hashOnly(query), { debug: true });
    expect(hashed.body.data).toEqual(text.body.data);
    expect(hashed.body.extensions?.cache.response).toMatchObject({ hits: 1 });
    expect(hashed.body.extensions?.sql.queries).toBe(0);
  });

  it('runs a subscription by hash over graphql-ws after registering it', async () => {
    const subscription = 'subscription Ticks($id: ID!) { pipelineRun(id: $id) { id } }';
    const variables = { id: globalId('PipelineRun', '999999') };
    const url = `ws://127.0.0.1:${apqHttp.port}/graphql`;
    const extensions = persisted(subscription);
    const miss = await firstWsResult(url, '', variables, { extensions });
    expect(wsCodes(miss)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    const registered = await firstWsResult(url, subscription, variables, { extensions });
    // Past the persisted-query step: the run id names no run.
    expect(wsCodes(registered)).toEqual(['NOT_FOUND']);
    expect(await firstWsResult(url, '', variables, { extensions })).toEqual(registered);
  });
});

describe('trusted documents (TRUSTED_DOCUMENTS)', () => {
  const viewerQuery = 'query Viewer { viewer { name role } }';

  it('runs a manifest operation sent by hash', async () => {
    const answer = await send(trusted, hashOnly(viewerQuery), { token: author.token });
    expect(answer.body).toEqual({ data: { viewer: { name: 'Ada', role: 'AUTHOR' } } });
  });

  it('refuses a document it was not given before any SQL, even with a token to look up', async () => {
    const before = await sqlStatements(trusted);
    const raw = await send(trusted, { query: viewerQuery }, { token: author.token });
    expect(raw.status).toBe(400);
    expect(codesOf(raw)).toEqual(['PERSISTED_QUERY_ONLY']);
    expect(raw.body).not.toHaveProperty('data');

    const unknownHash = await send(trusted, hashOnly(freshQuery()), { token: author.token });
    expect(unknownHash.status).toBe(404);
    expect(codesOf(unknownHash)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);

    // APQ registration is off: hash + text of an unknown document is refused, not stored.
    const register = await send(trusted, hashAndText(freshQuery()), { token: author.token });
    expect(codesOf(register)).toEqual(['PERSISTED_QUERY_ONLY']);
    const overGet = await send(trusted, { query: viewerQuery }, { method: 'GET' });
    expect(codesOf(overGet)).toEqual(['PERSISTED_QUERY_ONLY']);
    const nothing = await send(trusted, {});
    expect(codesOf(nothing)).toEqual(['PERSISTED_QUERY_ONLY']);
    expect(await sqlStatements(trusted)).toBe(before);
  });

  it('refuses a raw subscription over graphql-ws and runs a manifest one by hash', async () => {
    const url = `ws://127.0.0.1:${trustedHttp.port}/graphql`;
    const watch =
      'subscription Watch($id: ID!) {\n  pipelineRun(id: $id) { type progress step stepProgress runStatus error }\n}';
    const variables = { id: globalId('PipelineRun', '999999') };
    const refused = await firstWsResult(url, watch, variables, { token: author.token });
    expect(wsCodes(refused)).toEqual(['PERSISTED_QUERY_ONLY']);
    const ran = await firstWsResult(url, '', variables, {
      token: author.token,
      extensions: persisted(watch),
    });
    expect(wsCodes(ran)).toEqual(['NOT_FOUND']);
  });

  it('lets development run other documents too (GraphiQL)', async () => {
    const development = await startTestApp(
      { NODE_ENV: 'development', TRUSTED_DOCUMENTS },
      instanceA,
    );
    try {
      const raw = await send(development, { query: '{ posts(first: 1) { totalCount } }' });
      expect(raw.body).toEqual({ data: { posts: { totalCount: 1 } } });
      const unknownHash = await send(development, hashOnly(freshQuery()));
      expect(codesOf(unknownHash)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    } finally {
      await development.close();
    }
  });

  it('refuses to start on a manifest whose hashes do not match their documents', () => {
    const folder = mkdtempSync(join(tmpdir(), 'quire-manifest-'));
    const file = join(folder, 'manifest.json');
    writeFileSync(
      file,
      JSON.stringify({
        [documentHash('{ a }')]: '{ b }',
        [documentHash('{ c }')]: 42,
        [documentHash('{ d }')]: '{ d }',
      }),
    );
    expect(() => loadTrustedDocuments(file)).toThrow(ConfigError);
    expect(() => loadTrustedDocuments(file)).toThrow(
      /not the SHA-256 of its document[\s\S]*the document is not a string/,
    );
    writeFileSync(file, '[1, 2]');
    expect(() => loadTrustedDocuments(file)).toThrow(/expected a JSON object/);
    expect(() => loadTrustedDocuments(join(folder, 'missing.json'))).toThrow(ConfigError);
  });
});
