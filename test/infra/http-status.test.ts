import { once } from 'node:events';
import { GraphQLError } from 'graphql';
import { serverAudits } from 'graphql-http';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { withHttpStatus } from '../../src/plugins/http-status.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createUser, globalId, type TestUser } from '../helpers/factories.ts';

// GraphQL over HTTP: once execution has started the status is 200 under both JSON media types;
// GraphQL request errors (parse, validation, operation name, variables, limits) answer 400 under
// application/graphql-response+json and 200 under application/json; refusals of the HTTP
// request itself (token, method, media types, size, mutation rate limit) keep their 4xx.

const MUTATION_LIMIT = 3;
let app: TestApp;
let http: HttpServer;
let url: string;
let author: TestUser;

beforeAll(async () => {
  app = await startTestApp({
    RATE_LIMIT_MUTATIONS: String(MUTATION_LIMIT),
    RATE_LIMIT_SEARCH: '1',
  });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

const JSON_TYPE = 'application/json';
const GRAPHQL_RESPONSE = 'application/graphql-response+json';
const ACCEPTS = [JSON_TYPE, GRAPHQL_RESPONSE] as const;

interface Sent {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

interface Answer {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, any> | null;
    errors?: { message: string; path?: unknown[]; extensions?: Record<string, any> }[];
  };
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  // yoga's status hints stay on the server.
  expect(text).not.toContain('"http"');
  return { status: response.status, headers: response.headers, body: JSON.parse(text) };
}

async function post(
  sent: Sent,
  options: { accept: string; token?: string; authorization?: string },
): Promise<Answer> {
  const authorization =
    options.authorization ?? (options.token ? `Bearer ${options.token}` : undefined);
  return answer(
    await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: options.accept,
        ...(authorization ? { authorization } : {}),
      },
      body: JSON.stringify(sent),
    }),
  );
}

async function get(sent: Sent, options: { accept: string; token?: string }): Promise<Answer> {
  const params = new URLSearchParams({ query: sent.query });
  if (sent.operationName) params.set('operationName', sent.operationName);
  if (sent.variables) params.set('variables', JSON.stringify(sent.variables));
  return answer(
    await fetch(`${url}?${params}`, {
      headers: {
        accept: options.accept,
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
    }),
  );
}

const codes = (body: Answer['body']) => body.errors?.map((error) => error.extensions?.code);

async function postCount(title: string): Promise<number> {
  const row = await app.deps.db
    .selectFrom('posts')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('title', '=', title)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

describe.each(ACCEPTS)('once execution started (Accept: %s)', (accept) => {
  it('answers 200 with the data when a field is refused to an anonymous viewer', async () => {
    const query = `{ __typename node(id: "${author.globalId}") { id ... on User { apiTokens { id } } } }`;
    for (const send of [post, get]) {
      const response = await send({ query }, { accept });
      expect(response.status).toBe(200);
      expect(response.body.data).toEqual({ __typename: 'Query', node: null });
      expect(codes(response.body)).toEqual(['UNAUTHENTICATED']);
      expect(response.body.errors![0]!.path).toEqual(['node', 'apiTokens']);
    }
  });

  it('answers 200 to a mutation whose first field committed and whose second is NOT_FOUND', async () => {
    const writer = await createUser(app.deps.db, 'AUTHOR');
    const title = `kept ${accept}`;
    const response = await post(
      {
        query: `mutation($title: String!, $missing: ID!) {
          kept: createPost(input: { title: $title, body: "x" }) { post { id } }
          missing: deletePost(input: { id: $missing }) { deletedPostId }
        }`,
        variables: { title, missing: globalId('Post', '999999999') },
      },
      { accept, token: writer.token },
    );
    expect(response.status).toBe(200);
    // Both root fields are non-null: the NOT_FOUND nulls `data`, after `kept` committed.
    expect(response.body).toMatchObject({ data: null });
    expect(codes(response.body)).toEqual(['NOT_FOUND']);
    expect(response.body.errors![0]!.path).toEqual(['missing']);
    expect(await postCount(title)).toBe(1);
  });

  it('answers 200 when a field is rate limited during execution', async () => {
    const viewer = await createUser(app.deps.db, 'VIEWER');
    const response = await post(
      {
        query: `{
          first: searchPosts(query: "graphql", first: 1) { edges { cursor } }
          second: searchPosts(query: "graphql", first: 1) { edges { cursor } }
        }`,
      },
      { accept, token: viewer.token },
    );
    expect(response.status).toBe(200);
    expect(codes(response.body)).toEqual(['RATE_LIMITED']);
    expect(response.body.errors![0]!.path).toEqual(['second']);
  });
});

const deep = (depth: number): string =>
  depth === 0 ? 'name' : `posts(first: 1) { edges { node { author { ${deep(depth - 1)} } } } }`;

/** Requests refused as a whole before execution, as GraphQL request errors. */
const requestErrors: [string, Sent, string][] = [
  ['a syntax error', { query: '{ viewer { id }' }, 'GRAPHQL_PARSE_FAILED'],
  ['an unknown field', { query: '{ viewer { nope } }' }, 'GRAPHQL_VALIDATION_FAILED'],
  [
    'an unknown operation name',
    { query: 'query A { __typename } query B { __typename }', operationName: 'C' },
    'OPERATION_RESOLUTION_FAILURE',
  ],
  [
    'several operations and no name',
    { query: 'query A { __typename } query B { __typename }' },
    'OPERATION_RESOLUTION_FAILURE',
  ],
  [
    'a variable of the wrong type',
    { query: 'query($n: Int) { posts(first: $n) { edges { cursor } } }', variables: { n: 'x' } },
    'BAD_USER_INPUT',
  ],
  [
    'a page over the cap',
    { query: '{ posts(first: 101) { edges { cursor } } }' },
    'BAD_USER_INPUT',
  ],
  [
    'too deep',
    { query: `{ users(first: 1) { edges { node { ${deep(6)} } } } }` },
    'QUERY_TOO_COMPLEX',
  ],
  ['too many tokens', { query: `{ viewer { ${'id '.repeat(6000)} } }` }, 'QUERY_TOO_COMPLEX'],
  [
    'too many aliases',
    { query: `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: __typename`).join(' ')} }` },
    'QUERY_TOO_COMPLEX',
  ],
];

describe('GraphQL request errors', () => {
  it.each(requestErrors)(
    '%s: 400 under graphql-response+json, 200 under json, no data',
    async (_, sent, code) => {
      // Node refuses a URL over its 16 KiB header limit (431) before yoga sees it.
      const sends = sent.query.length < 4096 ? [post, get] : [post];
      for (const send of sends) {
        for (const [accept, status] of [
          [GRAPHQL_RESPONSE, 400],
          [JSON_TYPE, 200],
        ] as const) {
          const response = await send(sent, { accept, token: author.token });
          expect({ via: send.name, accept, status: response.status }).toEqual({
            via: send.name,
            accept,
            status,
          });
          expect(response.body).not.toHaveProperty('data');
          expect(codes(response.body)).toContain(code);
        }
      }
    },
  );
});

describe.each(ACCEPTS)('refusals of the HTTP request (Accept: %s)', (accept) => {
  it('401 for an unknown token or a malformed Authorization header, before execution', async () => {
    for (const authorization of ['Bearer qr_forged', 'Basic dXNlcjpwYXNz']) {
      const response = await post({ query: '{ __typename }' }, { accept, authorization });
      expect(response.status).toBe(401);
      expect(response.body).not.toHaveProperty('data');
      expect(codes(response.body)).toEqual(['UNAUTHENTICATED']);
    }
  });

  it('405 for a mutation over GET, naming POST', async () => {
    const response = await get(
      { query: 'mutation { createPost(input: { title: "get", body: "x" }) { post { id } } }' },
      { accept, token: author.token },
    );
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
    expect(await postCount('get')).toBe(0);
  });

  it('429 for a mutation refused by the rate limit before it runs', async () => {
    const writer = await createUser(app.deps.db, 'AUTHOR');
    const title = `over the limit ${accept}`;
    const fields = Array.from(
      { length: MUTATION_LIMIT + 1 },
      (_, i) => `p${i}: createPost(input: { title: "${title}", body: "x" }) { post { id } }`,
    );
    const response = await post(
      { query: `mutation { ${fields.join(' ')} }` },
      { accept, token: writer.token },
    );
    expect(response.status).toBe(429);
    expect(response.body).not.toHaveProperty('data');
    expect(codes(response.body)).toEqual(['RATE_LIMITED']);
    expect(await postCount(title)).toBe(0);
  });

  it('413 for a body over the limit', async () => {
    const response = await post(
      { query: `{ __typename } # ${'x'.repeat(app.deps.config.MAX_BODY_BYTES)}` },
      { accept },
    );
    expect(response.status).toBe(413);
    expect(codes(response.body)).toEqual(['PAYLOAD_TOO_LARGE']);
  });

  it('400 for a request without a query: an empty POST body, a bare GET, an unknown APQ version', async () => {
    const postBody = (body: unknown) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': JSON_TYPE, accept },
        body: JSON.stringify(body),
      }).then(answer);
    const unsupportedVersion = { persistedQuery: { version: 2, sha256Hash: 'a'.repeat(64) } };
    for (const response of [
      await postBody({}),
      await fetch(url, { headers: { accept } }).then(answer),
      await postBody({ extensions: unsupportedVersion }),
    ]) {
      expect(response.status).toBe(400);
      expect(response.body).toEqual({
        errors: [{ message: 'Must provide query string.', extensions: { code: 'BAD_REQUEST' } }],
      });
    }
  });

  it('400 for a body that is not JSON, without the parser’s error or the body’s text', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': JSON_TYPE, accept },
      body: '{"query": "{ __typename }" secret',
    }).then(answer);
    expect(response.status).toBe(400);
    expect(response.body).toEqual({
      errors: [{ message: expect.any(String), extensions: { code: 'BAD_REQUEST' } }],
    });
    expect(JSON.stringify(response.body)).not.toMatch(/secret|SyntaxError|position/);
  });
});

describe('refusals of media types', () => {
  it('415 for a body that is not JSON', async () => {
    for (const contentType of ['text/plain', 'application/xml']) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: JSON_TYPE },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect({ contentType, status: response.status }).toEqual({ contentType, status: 415 });
    }
  });

  it('406 when no acceptable response type is offered', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/xml' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(response.status).toBe(406);
  });

  it('406 for a subscription to a client that only accepts JSON', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: JSON_TYPE },
      body: JSON.stringify({ query: 'subscription { postStatusChanged { status } }' }),
    });
    expect(response.status).toBe(406);
  });
});

/** What the graphql-sse client (distinct connections mode) hands to its sink. */
async function sseOutcome(sent: Sent, token?: string) {
  const client = createSseClient({
    url,
    retryAttempts: 0,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const results: { errors?: { extensions?: Record<string, any> }[] }[] = [];
  try {
    const error = await new Promise<unknown>((resolve) => {
      client.subscribe(sent, {
        next: (result) => results.push(result as (typeof results)[number]),
        error: resolve,
        complete: () => resolve(undefined),
      });
    });
    return { results, error };
  } finally {
    client.dispose();
  }
}

describe('SSE: errors before execution arrive in an accepted stream (graphql-sse client)', () => {
  const subscription = 'subscription { postStatusChanged { status } }';
  it.each<[string, Sent, string, string?]>([
    ['a syntax error', { query: 'subscription {' }, 'GRAPHQL_PARSE_FAILED'],
    ['an unknown field', { query: 'subscription { nope }' }, 'GRAPHQL_VALIDATION_FAILED'],
    [
      'an unknown operation name',
      { query: subscription, operationName: 'Missing' },
      'OPERATION_RESOLUTION_FAILURE',
    ],
    [
      'too many tokens',
      { query: `subscription { postStatusChanged { ${'status '.repeat(6000)} } }` },
      'QUERY_TOO_COMPLEX',
    ],
    ['an unknown token', { query: subscription }, 'UNAUTHENTICATED', 'qr_forged'],
  ])('%s reaches the client as a result, not a failed connection', async (_, sent, code, token) => {
    const { results, error } = await sseOutcome(sent, token ?? author.token);
    expect(error).toBeUndefined();
    expect(results.map((result) => result.errors?.map((e) => e.extensions?.code))).toEqual([
      [code],
    ]);
  });

  it('answers an accepted stream with status 200 to an EventSource-style GET', async () => {
    const params = new URLSearchParams({ query: 'subscription { nope }' });
    const response = await fetch(`${url}?${params}`, { headers: { accept: 'text/event-stream' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const text = await response.text();
    expect(text).toContain('event: next');
    expect(text).toContain('GRAPHQL_VALIDATION_FAILED');
    expect(text).toContain('event: complete');
  });
});

describe('graphql-ws', () => {
  it('keeps yoga’s status hints out of the errors it sends', async () => {
    const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
    await once(socket, 'message');
    socket.send(
      JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { nope }' } }),
    );
    const [message] = await once(socket, 'message');
    const reply = JSON.parse(String(message));
    expect(reply).toMatchObject({ id: '1', type: 'error' });
    expect(reply.payload[0].extensions).toEqual({ code: 'GRAPHQL_VALIDATION_FAILED' });
    socket.close();
  });
});

describe('graphql-http server audits (GraphQL over HTTP)', () => {
  const audits = serverAudits({ url: () => url, fetchFn: fetch });
  it.each(audits.map((audit) => [audit.id, audit.name, audit] as const))(
    '%s %s',
    async (_, __, audit) => {
      const result = await audit.fn();
      expect(result.status, 'reason' in result ? result.reason : undefined).toBe('ok');
    },
  );
});

describe('errors built outside graphql-js', () => {
  // graphql-jit answered a valid request with an error that had no `extensions` (see
  // test/infra/execution-edges.test.ts); reading its hints must leave the status to yoga.
  it('keep their status rule without extensions instead of throwing', () => {
    const bare = new GraphQLError('compiled execution failed');
    Object.defineProperty(bare, 'extensions', { value: undefined });
    expect(() => withHttpStatus({ errors: [bare] })).not.toThrow();
    expect(() => withHttpStatus({ data: null, errors: [bare] })).not.toThrow();
  });
});
