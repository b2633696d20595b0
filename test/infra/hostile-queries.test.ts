import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, type TestUser } from '../helpers/factories.ts';

let app: TestApp;
let production: TestApp;
let admin: TestUser;

beforeAll(async () => {
  app = await startTestApp();
  production = await startTestApp({ NODE_ENV: 'production' }, app);
  const author = await createUser(app.deps.db, 'AUTHOR');
  admin = await createUser(app.deps.db, 'ADMIN');
  await createPosts(app.deps.db, [{ authorId: author.id }]);
});

afterAll(async () => {
  await production?.close();
  await app?.close();
});

interface RawRequest {
  method?: string;
  path?: string;
  contentType?: string;
  body?: string | Uint8Array;
}

async function send(target: TestApp, request: RawRequest, token?: string) {
  const response = await target.yoga.fetch(`http://quire.test${request.path ?? '/graphql'}`, {
    method: request.method ?? 'POST',
    headers: {
      'content-type': request.contentType ?? 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: request.body as BodyInit | undefined,
  });
  const text = await response.text();
  let code: string | undefined;
  try {
    code = JSON.parse(text).errors?.[0]?.extensions?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, code, text };
}

const json = (query: string, variables?: unknown) => JSON.stringify({ query, variables });
const nest = (depth: number): string =>
  depth === 0 ? 'name' : `posts(first: 1) { edges { node { author { ${nest(depth - 1)} } } } }`;

// Sent without Accept, i.e. as application/json: GraphQL request errors (parse, validation,
// limits, variables) answer 200 there, as GraphQL over HTTP says; HTTP refusals keep their 4xx.
// test/infra/http-status.test.ts covers application/graphql-response+json.
const shapes: [string, () => RawRequest, string, number][] = [
  [
    'deep nesting',
    () => ({ body: json(`{ users(first: 1) { edges { node { ${nest(6)} } } } }`) }),
    'QUERY_TOO_COMPLEX',
    200,
  ],
  [
    'alias flood',
    () => ({
      body: json(`{ ${Array.from({ length: 60 }, (_, i) => `a${i}: viewer { id }`).join(' ')} }`),
    }),
    'QUERY_TOO_COMPLEX',
    200,
  ],
  [
    'fragment cycle',
    () => ({
      body: json(
        'query { viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }',
      ),
    }),
    'GRAPHQL_VALIDATION_FAILED',
    200,
  ],
  [
    'huge first',
    () => ({ body: json('{ posts(first: 100000) { edges { node { id } } } }') }),
    'BAD_USER_INPUT',
    200,
  ],
  [
    'first above the page cap',
    () => ({ body: json('{ posts(first: 101) { edges { cursor } } }') }),
    'BAD_USER_INPUT',
    200,
  ],
  [
    'cost explosion within page caps',
    () => ({
      body: json(
        '{ posts(first: 100) { edges { node { comments(first: 100) { edges { node { post { comments(first: 100) { edges { node { id } } } } } } } } } } }',
      ),
    }),
    'QUERY_TOO_COMPLEX',
    200,
  ],
  [
    '1 MB query',
    () => ({ body: json(`{ viewer { id } } # ${'x'.repeat(1_048_576)}`) }),
    'PAYLOAD_TOO_LARGE',
    413,
  ],
  [
    'token flood under the size limit',
    () => ({ body: json(`{ viewer { ${'id '.repeat(6000)} } }`) }),
    'QUERY_TOO_COMPLEX',
    200,
  ],
  [
    'browser form post (CSRF)',
    () => ({
      contentType: 'application/x-www-form-urlencoded',
      body: 'query=%7B%20viewer%20%7B%20id%20%7D%20%7D',
    }),
    'CSRF_REJECTED',
    415,
  ],
  [
    // multipart is off in yoga (no uploads): the guard answers before any parser would.
    'multipart form post (CSRF)',
    () => ({
      contentType: 'multipart/form-data; boundary=quire',
      body: '--quire\r\ncontent-disposition: form-data; name="operations"\r\n\r\n{"query":"{ viewer { id } }"}\r\n--quire--\r\n',
    }),
    'CSRF_REJECTED',
    415,
  ],
  [
    'text/plain post (CSRF)',
    () => ({ contentType: 'text/plain', body: json('{ viewer { id } }') }),
    'CSRF_REJECTED',
    415,
  ],
  [
    'batched array',
    () => ({
      body: JSON.stringify([{ query: '{ viewer { id } }' }, { query: '{ viewer { id } }' }]),
    }),
    'BAD_REQUEST',
    400,
  ],
  [
    'invalid UTF-8',
    () => ({ body: new Uint8Array([0x7b, 0x22, 0x71, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }),
    'BAD_REQUEST',
    400,
  ],
  ['malformed JSON', () => ({ body: '{"query": "{ viewer { id } }"' }), 'BAD_REQUEST', 400],
  [
    'variables of the wrong type',
    () => ({
      body: json('query($n: Int) { posts(first: $n) { edges { cursor } } }', { n: 'many' }),
    }),
    'BAD_USER_INPUT',
    200,
  ],
  ['syntax error', () => ({ body: json('{ viewer { id }') }), 'GRAPHQL_PARSE_FAILED', 200],
  [
    'unknown field',
    () => ({ body: json('{ viewer { passwordHash } }') }),
    'GRAPHQL_VALIDATION_FAILED',
    200,
  ],
  [
    'tampered cursor',
    () => ({ body: json('{ posts(first: 1, after: "eyJhIjoxfQ") { edges { cursor } } }') }),
    'BAD_USER_INPUT',
    200,
  ],
  [
    'mutation over GET',
    () => ({
      method: 'GET',
      path: '/graphql?query=mutation%7BdeletePost(id%3A%22x%22)%7D',
      body: undefined,
    }),
    'BAD_REQUEST',
    405,
  ],
  [
    'introspection in production',
    () => ({ body: json('{ __schema { types { name } } }') }),
    'GRAPHQL_VALIDATION_FAILED',
    200,
  ],
];

async function sqlStatements(target: TestApp): Promise<number> {
  return (await target.deps.metrics.sqlStatements.get()).values[0]?.value ?? 0;
}

async function tokenLastUsed(): Promise<string | null> {
  const row = await app.deps.db
    .selectFrom('api_tokens')
    .select('last_used_at')
    .where('user_id', '=', admin.id)
    .executeTakeFirstOrThrow();
  return row.last_used_at;
}

/** A lookup of the token would set last_used_at again (it is stale), so this must stay null. */
async function forgetTokenUse(): Promise<void> {
  await app.deps.db
    .updateTable('api_tokens')
    .set({ last_used_at: null })
    .where('user_id', '=', admin.id)
    .execute();
}

describe.each(['anonymous', 'signed in'] as const)('hostile requests (%s)', (who) => {
  it.each(shapes)('rejects %s with %s (%i) before any SQL', async (name, build, code, status) => {
    const target = name.includes('production') ? production : app;
    const token = who === 'signed in' ? admin.token : undefined;
    await forgetTokenUse();
    const before = await sqlStatements(target);
    const response = await send(target, build(), token);
    expect(response.code).toBe(code);
    expect(response.status).toBe(status);
    expect(response.text).not.toMatch(/\bat .+\.(ts|js):\d+|select |insert /i);
    expect(await sqlStatements(target)).toBe(before);
    expect(await tokenLastUsed()).toBeNull();
  });
});

describe('hostile requests', () => {
  it('counts the token lookup: a valid request with the token issues SQL and marks it used', async () => {
    await forgetTokenUse();
    const before = await sqlStatements(app);
    const response = await send(app, { body: json('{ viewer { id } }') }, admin.token);
    expect(JSON.parse(response.text)).toEqual({ data: { viewer: { id: admin.globalId } } });
    expect(await sqlStatements(app)).toBeGreaterThan(before);
    expect(await tokenLastUsed()).not.toBeNull();
  });

  it('checks limits against each request’s variables, also for a document that passed before', async () => {
    const query = 'query Page($size: Int) { posts(first: $size) { edges { node { id } } } }';
    for (const size of [5, 100_000, 5, 101]) {
      const response = await send(app, { body: json(query, { size }) });
      expect(response.code).toBe(size > 100 ? 'BAD_USER_INPUT' : undefined);
    }
  });

  it('checks page sizes and cost per request when a document passed with other values of its other variables', async () => {
    // A write with a new title per request passes the limits once per document; the page
    // size it also takes must still be checked against each request's value.
    const query = `mutation Write($title: String!, $size: Int, $other: Int) {
      createPost(input: { title: $title, body: "x" }) { post { id comments(first: $size) {
        edges { node { post { comments(first: $other) {
          edges { node { id body createdAt author { name } } } } } } } } } }
    }`;
    const cases: [number, number, string | undefined][] = [
      [1, 1, undefined],
      [1, 1, undefined],
      [101, 1, 'BAD_USER_INPUT'],
      [1, 101, 'BAD_USER_INPUT'],
      [100, 100, 'QUERY_TOO_COMPLEX'],
      [2, 2, undefined],
    ];
    for (const [index, [size, other, code]] of cases.entries()) {
      const variables = { title: `Limits ${index}`, size, other };
      const response = await send(app, { body: json(query, variables) }, admin.token);
      expect(response.code, `${size}, ${other}`).toBe(code);
    }
  });

  it('applies @include with each request’s value when a document passed before', async () => {
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: viewer { id }`).join(' ');
    const query = `query Flood($on: Boolean!, $id: ID!) {
      node(id: $id) { id } ... @include(if: $on) { ${aliases} } }`;
    for (const on of [false, true, false, true]) {
      const response = await send(app, { body: json(query, { on, id: admin.globalId }) });
      expect(response.code, String(on)).toBe(on ? 'QUERY_TOO_COMPLEX' : undefined);
    }
  });

  it('checks argument values of each request’s variables when a document passed before', async () => {
    const query =
      'query Lookup($id: ID!, $title: String) { node(id: $id) { id } posts(first: 1, filter: { tag: $title }) { edges { cursor } } }';
    const cases: [Record<string, unknown>, string | undefined][] = [
      [{ id: admin.globalId, title: 'plain' }, undefined],
      [{ id: 'not an id', title: 'plain' }, 'BAD_USER_INPUT'],
      [{ id: admin.globalId, title: 'nul \u0000 byte' }, 'BAD_USER_INPUT'],
      [{ id: admin.globalId, title: 'x'.repeat(200_001) }, 'BAD_USER_INPUT'],
      [{ id: admin.globalId, title: 'plain again' }, undefined],
    ];
    for (const [variables, code] of cases) {
      const response = await send(app, { body: json(query, variables) });
      expect(response.code, JSON.stringify(variables).slice(0, 60)).toBe(code);
    }
  });

  it('hides field suggestions in production only', async () => {
    const query = json('{ viewer { nam } }');
    expect((await send(app, { body: query })).text).toContain('Did you mean');
    expect((await send(production, { body: query })).text).not.toContain('Did you mean');
  });

  it('compresses large JSON responses for clients that accept gzip', async () => {
    const response = await app.yoga.fetch('http://quire.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: json(
        `{ ${Array.from({ length: 25 }, (_, i) => `p${i}: posts(first: 20) { edges { node { title slug body } } }`).join(' ')} }`,
      ),
    });
    expect(response.headers.get('content-encoding')).toBe('gzip');
  });
});
