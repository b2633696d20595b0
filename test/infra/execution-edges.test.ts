import { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { take, wsSubscribe } from '../helpers/clients.ts';
import { createUser, type TestUser } from '../helpers/factories.ts';
import { redisUrl } from '../helpers/services.ts';

/**
 * Faults found by attacking the issue 10 fixes through a real server. Each test fails on the
 * code it was written against and states the expected behaviour.
 */
const ALLOWED = 'https://app.example';

let app: TestApp;
let http: HttpServer;
let url: string;
let broken: TestApp;
let brokenHttp: HttpServer;
let admin: TestUser;
let author: TestUser;

beforeAll(async () => {
  app = await startTestApp({ REDIS_URL: redisUrl, CORS_ORIGINS: ALLOWED });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
  admin = await createUser(app.deps.db, 'ADMIN');
  author = await createUser(app.deps.db, 'AUTHOR');
  // Same database name, unreachable port: every SQL statement fails unexpectedly (a stable way
  // to make a resolver throw an error that must be masked).
  broken = await startTestApp({
    DATABASE_URL: app.database.url.replace(/:\d+\//, ':1/'),
    REDIS_URL: redisUrl,
  });
  brokenHttp = await startHttpServer(broken.yoga, httpOptions(broken.deps.config, 0));
});

afterAll(async () => {
  await brokenHttp?.close();
  await broken?.close();
  await http?.close();
  await app?.close();
});

async function post(query: string, token?: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query }),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe('query limits', () => {
  // The old document-wide alias rule counted every aliased field; the executed-fields count
  // stops at introspection fields (they are not in the type's getFields()), so aliases and
  // breadth inside __schema/__type are never counted. 25 aliases per level over three levels of
  // __schema lists took 18 s of CPU and a 20 MB answer from a 1.6 KB request (limit: 30 aliases).
  it('counts aliases inside introspection fields against MAX_QUERY_ALIASES', async () => {
    const aliases = Array.from({ length: 40 }, (_, index) => `a${index}: name`).join(' ');
    const { body } = await post(`{ __type(name: "Query") { ${aliases} } }`);
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'aliases',
    });
  });

  it('counts aliased introspection lists spread through fragments', async () => {
    const fields = Array.from({ length: 8 }, (_, index) => `f${index}: fields { name }`).join(' ');
    const types = Array.from({ length: 8 }, (_, index) => `t${index}: types { ...T }`).join(' ');
    const { body } = await post(`{ __schema { ${types} } } fragment T on __Type { ${fields} }`);
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
  });
});

describe('tag visibility', () => {
  // A tag that only labels posts the viewer cannot see is hidden everywhere else (list, node,
  // counts), yet an author who puts the same name on a post of their own gets back the existing
  // tag: its createdAt (and low id) tell that some hidden post already carries that name, and
  // since when. Guessed names ("acquire-acme") can be confirmed this way.
  it('a hidden tag name reused by another author does not reveal when the hidden tag was created', async () => {
    const name = `hidden-${Date.now()}`;
    const secret = await post(
      `mutation { createPost(input: { title: "Secret", body: "b", tags: ["${name}"] }) { post {
        status tags { name createdAt } } } }`,
      admin.token,
    );
    expect(secret.body.data.createPost.post.status).toBe('DRAFT');
    const hiddenCreatedAt = secret.body.data.createPost.post.tags[0].createdAt as string;
    // Not visible to the author before: the tag is hidden from them.
    const before = await post('{ tags(first: 100) { edges { node { name } } } }', author.token);
    expect(JSON.stringify(before.body)).not.toContain(name);

    await new Promise((resolve) => setTimeout(resolve, 50));
    const guessedAt = Date.now();
    const mine = await post(
      `mutation { createPost(input: { title: "Mine", body: "b", tags: ["${name}"] }) { post {
        tags { name createdAt } } } }`,
      author.token,
    );
    const seen = mine.body.data.createPost.post.tags[0].createdAt as string;
    // Answering the hidden tag's own createdAt reveals it; a tag new to this viewer should look
    // new (created no earlier than the request that made it visible to them).
    expect(seen).not.toBe(hiddenCreatedAt);
    expect(Date.parse(seen)).toBeGreaterThanOrEqual(guessedAt - 1000);
  });
});

describe('CORS', () => {
  // The response's CORS headers depend on the Origin header (present for the allowed origin,
  // absent otherwise), so a shared cache must key on it: `Vary: Origin`. yoga adds it only for
  // its list form; the function form used here never gets it.
  it('answers a listed origin with Vary: Origin', async () => {
    const response = await fetch(`${url}?query=${encodeURIComponent('{ __typename }')}`, {
      headers: { origin: ALLOWED, accept: 'application/json' },
    });
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(response.headers.get('vary') ?? '').toMatch(/\borigin\b/i);
  });

  it('answers an unlisted origin with Vary: Origin too (its answer differs only by Origin)', async () => {
    const response = await fetch(`${url}?query=${encodeURIComponent('{ __typename }')}`, {
      headers: { origin: 'https://evil.example', accept: 'application/json' },
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('vary') ?? '').toMatch(/\borigin\b/i);
  });
});

describe('headers set after execution', () => {
  // Added by onResponse hooks after yoga built the response: they must reach the client over HTTP
  // and in-process alike, alongside the Vary that compression adds.
  const post = (headers: Record<string, string>) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query: '{ __typename }' }),
    });

  it('sends x-request-id and Vary: Origin on a plain request, each once', async () => {
    const response = await post({ 'x-request-id': 'plain-request-1' });
    expect(response.headers.get('x-request-id')).toBe('plain-request-1');
    expect(response.headers.get('vary')).toBe('Origin');
    expect(response.headers.get('content-type')).toMatch(/json/);
  });

  it('leaves a plain response on the single writeHead path (its headers set, never appended)', async () => {
    // @whatwg-node writes a response whose header object was only ever `set` in one writeHead
    // call; a header appended anywhere builds its map, and Node then copies the headers one
    // setHeader at a time (setHeaders), measurably more CPU per request.
    // Node's typings for its version 20 do not list setHeaders (added in 18.15).
    const prototype = ServerResponse.prototype as unknown as {
      setHeaders(headers: unknown): unknown;
      writeHead(...args: unknown[]): unknown;
    };
    const setHeaders = vi.spyOn(prototype, 'setHeaders');
    const writeHead = vi.spyOn(prototype, 'writeHead');
    const headerSets: Record<string, string>[] = [{}, { origin: ALLOWED }];
    try {
      for (const headers of headerSets) {
        setHeaders.mockClear();
        writeHead.mockClear();
        const response = await post(headers);
        expect(response.headers.get('vary')).toMatch(/\borigin\b/i);
        expect(response.headers.get('x-request-id')).toMatch(/\S/);
        expect(setHeaders).not.toHaveBeenCalled();
        expect(writeHead).toHaveBeenCalledTimes(1);
        expect(writeHead.mock.calls[0]![2]).toMatchObject({
          vary: expect.stringMatching(/origin/i),
        });
      }
    } finally {
      setHeaders.mockRestore();
      writeHead.mockRestore();
    }
  });

  it('keeps Origin in Vary when compression adds accept-encoding', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: JSON.stringify({ query: '{ __schema { types { name description } } }' }),
    });
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(response.headers.get('x-request-id')).toMatch(/\S/);
    expect(response.headers.get('vary') ?? '').toMatch(/\borigin\b/i);
  });

  it('sends them through yoga.fetch too, where there is no Node response', async () => {
    const response = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'in-process-1' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(response.headers.get('x-request-id')).toBe('in-process-1');
    expect(response.headers.get('vary')).toBe('Origin');
  });
});

describe('masked errors look the same on every transport', () => {
  it('graphql-ws sends a masked error without yoga-internal extensions (as HTTP does)', async () => {
    const brokenUrl = `http://127.0.0.1:${brokenHttp.port}/graphql`;
    const query = '{ posts(first: 1) { totalCount } }';
    const overHttp = await fetch(brokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    }).then((response) => response.json());
    expect(overHttp.errors[0].extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });

    const ws = wsSubscribe(brokenUrl.replace('http', 'ws'), query, {});
    try {
      const [overWs] = await take(ws, 1);
      expect(overWs!.errors?.[0]?.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    } finally {
      await ws.dispose();
    }
  });
});

describe('valid operations answer without INTERNAL_SERVER_ERROR', () => {
  // A non-null variable with a default may be omitted (GraphQL spec, CoerceVariableValues).
  // graphql-jit (single-operation documents) refuses it with a GraphQLError that has no
  // `extensions`; request-log-plugin's logResultErrors then reads `error.extensions.code`,
  // throws, and the whole request becomes HTTP 500 INTERNAL_SERVER_ERROR logged at error level.
  // The same operation inside a two-operation document (graphql-js) answers its data.
  const query = 'query ($n: Int! = 1) { posts(first: $n) { totalCount } }';

  it('omitting a defaulted non-null variable answers the data over HTTP', async () => {
    const { status, body } = await post(query);
    expect(body.errors).toBeUndefined();
    expect(status).toBe(200);
    expect(body.data).toEqual({ posts: { totalCount: expect.any(Number) } });
  });

  it('omitting a defaulted non-null variable answers the data over graphql-ws', async () => {
    const ws = wsSubscribe(url.replace('http', 'ws'), query, {});
    try {
      const [result] = await take(ws, 1);
      expect(result!.errors).toBeUndefined();
      expect(result!.data).toEqual({ posts: { totalCount: expect.any(Number) } });
    } finally {
      await ws.dispose();
    }
  });

  // An input object variable may omit a field that has a default (GraphQL spec, CoerceInputValue:
  // `PostOrder.direction` is DESC then). graphql-jit 0.8 refuses the omission with a GraphQLError
  // without `extensions`, which the HTTP status plugin then read: INTERNAL_SERVER_ERROR.
  it('a variable that omits a defaulted input field answers the data', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'query ($order: PostOrder) { posts(first: 1, orderBy: $order) { totalCount } }',
        variables: { order: { field: 'CREATED_AT' } },
      }),
    });
    const body = await response.json();
    expect(body.errors).toBeUndefined();
    expect(response.status).toBe(200);
    expect(body.data).toEqual({ posts: { totalCount: expect.any(Number) } });
  });

  // graphql-js 16 crashes (`undefined is not iterable`) when a subscription's only root field is
  // skipped: client input answered INTERNAL_SERVER_ERROR instead of a client error.
  it('a subscription whose root field is skipped is a client error, not INTERNAL', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription { postStatusChanged @skip(if: true) { status } }',
      }),
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text().catch(() => '');
    expect(text).not.toContain('INTERNAL_SERVER_ERROR');
    expect(text).toMatch(/"code":"(BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED|BAD_REQUEST)"/);
  });
});
