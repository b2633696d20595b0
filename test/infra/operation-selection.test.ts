import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphiqlExamples } from '../../src/graphiql-examples.ts';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { sseSubscribe, take, wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, type TestUser } from '../helpers/factories.ts';
import { redisUrl, waitForRedisSubscribers } from '../helpers/services.ts';

/**
 * The operation that executes is the one the request names, and every guard (limits, rate
 * limits, GET-mutation refusal, response cache) judges that operation and the fields it really
 * executes: fragments, inline fragments, @skip/@include with variables.
 */
let app: TestApp;
let http: HttpServer;
let url: string;

beforeAll(async () => {
  app = await startTestApp({
    REDIS_URL: redisUrl,
    RATE_LIMIT_MUTATIONS: '2',
    RATE_LIMIT_SEARCH: '2',
    MAX_QUERY_ALIASES: '30',
    MAX_QUERY_COMPLEXITY: '2000',
  });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, any> | null;
    errors?: { message: string; extensions?: Record<string, any> }[];
  };
}

async function post(
  query: string,
  options: { operationName?: string; variables?: Record<string, unknown>; token?: string } = {},
): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: JSON.stringify({
      query,
      operationName: options.operationName,
      variables: options.variables,
    }),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

async function get(
  query: string,
  options: { operationName?: string; variables?: Record<string, unknown>; token?: string } = {},
): Promise<Answer> {
  const search = new URLSearchParams({ query });
  if (options.operationName) search.set('operationName', options.operationName);
  if (options.variables) search.set('variables', JSON.stringify(options.variables));
  const response = await fetch(`${url}?${search}`, {
    headers: {
      accept: 'application/graphql-response+json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const codes = (answer: Answer) => answer.body.errors?.map((error) => error.extensions?.code) ?? [];

async function postsBy(user: TestUser): Promise<number> {
  const { rows } = await sql<{
    count: string;
  }>`select count(*) from posts where author_id = ${user.id}`.execute(app.deps.db);
  return Number(rows[0]!.count);
}

const createPost = (alias: string, title = alias) =>
  `${alias}: createPost(input: { title: "${title}", body: "x" }) { post { id } }`;

describe('operation selection', () => {
  it('a GET naming the query never runs the mutation compiled for the same document', async () => {
    const document = `query Q { __typename } mutation M { ${createPost('created')} }`;
    const author = await createUser(app.deps.db, 'AUTHOR');

    const refused = await post(document, { operationName: 'M' });
    expect(codes(refused)).toEqual(['UNAUTHENTICATED']);

    const query = await get(document, { operationName: 'Q', token: author.token });
    expect(query.status).toBe(200);
    expect(query.body).toEqual({ data: { __typename: 'Query' } });
    expect(await postsBy(author)).toBe(0);

    // And the other way round: after Q ran, M runs the mutation, not Q.
    const mutation = await post(document, { operationName: 'M', token: author.token });
    expect(mutation.body.data?.created?.post.id).toEqual(expect.any(String));
    expect(await postsBy(author)).toBe(1);

    const getMutation = await get(document, { operationName: 'M', token: author.token });
    expect(getMutation.status).toBe(405);
    expect(await postsBy(author)).toBe(1);
  });

  it("GraphiQL's preloaded document answers each operation with its own data", async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    await createPosts(app.deps.db, [{ authorId: author.id, title: 'GraphQL in practice' }]);
    const latest = await post(graphiqlExamples, { operationName: 'LatestPosts' });
    expect(Object.keys(latest.body.data ?? {})).toEqual(['posts']);
    const search = await post(graphiqlExamples, { operationName: 'Search' });
    expect(Object.keys(search.body.data ?? {})).toEqual(['searchPosts']);
    const again = await post(graphiqlExamples, { operationName: 'LatestPosts' });
    expect(again.body).toEqual(latest.body);
  });

  it('the response cache stores and serves each operation of a document under its own key', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    await createPosts(app.deps.db, [{ authorId: author.id, title: 'Cached per operation' }]);
    const document = `
      query Titles { posts(first: 1) { edges { node { title } } } }
      query Count { posts(first: 1) { totalCount } }`;
    for (let round = 0; round < 2; round += 1) {
      const titles = await get(document, { operationName: 'Titles' });
      expect(Object.keys(titles.body.data?.posts ?? {})).toEqual(['edges']);
      const count = await get(document, { operationName: 'Count' });
      expect(Object.keys(count.body.data?.posts ?? {})).toEqual(['totalCount']);
    }
  });

  it('a fragment skipped at its first spread still runs where it is not skipped', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    await createPosts(app.deps.db, [{ authorId: author.id, title: 'Spread twice' }]);
    const answer = await post(`{
      skipped: posts(first: 1) { edges { node { ...F @skip(if: true) } } }
      kept: posts(first: 1) { edges { node { ...F } } }
    } fragment F on Post { title }`);
    expect(answer.body.data?.skipped.edges[0].node).toEqual({});
    expect(answer.body.data?.kept.edges[0].node.title).toEqual(expect.any(String));
  });

  it('subscriptions over SSE and graphql-ws run the named operation of a shared document', async () => {
    const document = `query Q { __typename } subscription S { postStatusChanged { status } }`;
    // The subscription is compiled first: Q must not be answered by it.
    const abort = new AbortController();
    const live = sseSubscribe(url, document, {}, { operationName: 'S', signal: abort.signal });
    const pending = live.next();
    await waitForRedisSubscribers([`${app.deps.config.REDIS_PREFIX}postStatusChanged`]);
    const overSse = await take(sseSubscribe(url, document, {}, { operationName: 'Q' }), 1);
    expect(overSse).toEqual([{ data: { __typename: 'Query' } }]);
    const ws = wsSubscribe(url.replace('http', 'ws'), document, {}, { operationName: 'Q' });
    try {
      expect(await take(ws, 1)).toEqual([{ data: { __typename: 'Query' } }]);
    } finally {
      await ws.dispose();
      abort.abort();
      await pending;
    }
  });
});

describe('an operation the request does not identify', () => {
  const document = `query A { __typename } query B { __typename }`;
  const cases = [
    {
      operationName: undefined,
      message: 'Must provide operation name if query contains multiple operations.',
    },
    { operationName: 'C', message: 'Unknown operation named "C".' },
  ];

  it.each(cases)(
    'is OPERATION_RESOLUTION_FAILURE saying why over HTTP ($operationName)',
    async ({ operationName, message }) => {
      for (const answer of [
        await post(document, { operationName }),
        await get(document, { operationName }),
      ]) {
        expect(answer.status).toBe(400);
        expect(answer.body.errors).toEqual([
          { message, extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } },
        ]);
      }
    },
  );

  it.each(cases)(
    'is the same error over graphql-ws ($operationName)',
    async ({ operationName, message }) => {
      const ws = wsSubscribe(url.replace('http', 'ws'), document, {}, { operationName });
      try {
        await expect(take(ws, 1)).rejects.toEqual([
          { message, extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } },
        ]);
      } finally {
        await ws.dispose();
      }
    },
  );
});

describe('query limits judge the selected operation', () => {
  const document = `
    query Small($n: Int!) { posts(first: $n) { edges { node { id } } } }
    query Large($n: Int!) {
      posts(first: $n) { edges { node { comments(first: $n) { edges { node { id } } } } } }
    }`;

  it('refuses the costly operation after its cheap sibling passed with the same variables', async () => {
    const small = await post(document, { operationName: 'Small', variables: { n: 40 } });
    expect(small.status).toBe(200);
    expect(small.body.errors).toBeUndefined();
    const large = await post(document, { operationName: 'Large', variables: { n: 40 } });
    expect(large.status).toBe(400);
    expect(codes(large)).toEqual(['QUERY_TOO_COMPLEX']);
    const largeOverGet = await get(document, { operationName: 'Large', variables: { n: 40 } });
    expect(codes(largeOverGet)).toEqual(['QUERY_TOO_COMPLEX']);
  });

  it('counts the aliases a fragment brings each time it is spread', async () => {
    const aliases = Array.from({ length: 12 }, (_, index) => `t${index}: title`).join(' ');
    const spreads = ['a', 'b', 'c']
      .map((alias) => `${alias}: posts(first: 1) { edges { node { ...F } } }`)
      .join(' ');
    const flood = await post(`query { ${spreads} } fragment F on Post { ${aliases} }`);
    expect(codes(flood)).toEqual(['QUERY_TOO_COMPLEX']);
    expect(flood.body.errors?.[0]?.extensions?.limit).toBe('aliases');
    const once = await post(
      `query { a: posts(first: 1) { edges { node { ...F } } } } fragment F on Post { ${aliases} }`,
    );
    expect(once.body.errors).toBeUndefined();
  });

  it('does not count aliases that @skip or @include leave out', async () => {
    const aliases = (prefix: string) =>
      Array.from({ length: 20 }, (_, index) => `${prefix}${index}: title`).join(' ');
    // Same response keys merge into one execution, so the included ones are named apart.
    const document = `query ($all: Boolean!) {
      posts(first: 1) { edges { node { ...F ... on Post @include(if: $all) { ${aliases('u')} } } } }
    } fragment F on Post { ${aliases('t')} ${aliases('t')} }`;
    expect(codes(await post(document, { variables: { all: true } }))).toEqual([
      'QUERY_TOO_COMPLEX',
    ]);
    expect((await post(document, { variables: { all: false } })).body.errors).toBeUndefined();
  });
});

describe('mutation rate limit counts the fields that execute', () => {
  it('charges every mutation a fragment brings, and refuses them all before any runs', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    const document = `mutation { ...F } fragment F on Mutation {
      ${createPost('a')} ${createPost('b')} ${createPost('c')} ${createPost('d')}
    }`;
    const refused = await post(document, { token: author.token });
    expect(refused.status).toBe(429);
    expect(codes(refused)).toEqual(['RATE_LIMITED']);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await postsBy(author)).toBe(0);
  });

  it('charges through inline fragments and by @skip/@include with variables', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    const document = `mutation ($skip: Boolean!) {
      ${createPost('a')}
      ... on Mutation @skip(if: $skip) { ${createPost('b')} ${createPost('c')} }
      d: createPost(input: { title: "d", body: "x" }) @include(if: false) { post { id } }
    }`;
    const skipped = await post(document, { token: author.token, variables: { skip: true } });
    expect(skipped.body.errors).toBeUndefined();
    expect(Object.keys(skipped.body.data ?? {})).toEqual(['a']);
    expect(await postsBy(author)).toBe(1);
    // One call left in the window: the two-field variant of the same document does not fit.
    const included = await post(document, { token: author.token, variables: { skip: false } });
    expect(codes(included)).toEqual(['RATE_LIMITED']);
    expect(await postsBy(author)).toBe(1);
  });

  it('charges the mutation a multi-operation document selects, never its queries', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    const document = `query Q { __typename } mutation M { ${createPost('a')} ${createPost('b')} ${createPost('c')} }`;
    for (let call = 0; call < 3; call += 1) {
      expect((await post(document, { operationName: 'Q', token: author.token })).status).toBe(200);
    }
    const refused = await post(document, { operationName: 'M', token: author.token });
    expect(codes(refused)).toEqual(['RATE_LIMITED']);
    expect(await postsBy(author)).toBe(0);
  });

  it('charges searchPosts only when the selected operation runs it', async () => {
    const reader = await createUser(app.deps.db, 'VIEWER');
    const document = `query Q { __typename } query S { searchPosts(query: "x") { totalCount } }`;
    for (let call = 0; call < 4; call += 1) {
      await post(document, { operationName: 'Q', token: reader.token });
    }
    const searches = [];
    for (let call = 0; call < 3; call += 1) {
      searches.push(await post(document, { operationName: 'S', token: reader.token }));
    }
    expect(searches.map(codes)).toEqual([[], [], ['RATE_LIMITED']]);
  });
});
