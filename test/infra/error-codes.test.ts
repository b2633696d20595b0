import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createUser, type TestUser } from '../helpers/factories.ts';

/**
 * Codes given where errors are made, not read back from their messages: the token limit is told
 * from a syntax error by where the parser stopped, and parse errors and bad variables carry
 * their codes on every transport.
 */

const MAX_TOKENS = 50;
let app: TestApp;
let http: HttpServer;
let user: TestUser;

beforeAll(async () => {
  app = await startTestApp({ MAX_QUERY_TOKENS: String(MAX_TOKENS) });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  user = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

const firstError = async (query: string, variables?: Record<string, unknown>) => {
  const answer = await app.gql(query, variables, { token: user.token });
  expect(answer.data ?? null).toBeNull();
  return answer.errors?.[0];
};

describe('the token limit', () => {
  it('answers QUERY_TOO_COMPLEX for a document past it', async () => {
    const error = await firstError(`{ viewer { ${'id '.repeat(MAX_TOKENS)} } }`);
    expect(error?.message).toBe(`Documents are limited to ${MAX_TOKENS} tokens`);
    expect(error?.extensions).toEqual({ code: 'QUERY_TOO_COMPLEX', limit: 'tokens' });
  });

  it('leaves a syntax error before the limit a syntax error, however long the document', async () => {
    const error = await firstError(`{ viewer { id } } } ${'id '.repeat(2 * MAX_TOKENS)}`);
    expect(error?.message).toBe('Syntax Error: Unexpected "}".');
    expect(error?.extensions).toEqual({ code: 'GRAPHQL_PARSE_FAILED' });
  });

  it('leaves a document that ends at the limit, unfinished, a syntax error', async () => {
    // 3 + 47 = 50 tokens, then the end of the document where a `}` should be.
    const error = await firstError(`{ viewer { ${'id '.repeat(MAX_TOKENS - 3)}`);
    expect(error?.message).toBe('Syntax Error: Expected Name, found <EOF>.');
    expect(error?.extensions).toEqual({ code: 'GRAPHQL_PARSE_FAILED' });
  });

  it('leaves a lexical error at the token past the limit a syntax error', async () => {
    const error = await firstError(`{ viewer { ${'id '.repeat(MAX_TOKENS - 3)} "unterminated`);
    expect(error?.message).toBe('Syntax Error: Unterminated string.');
    expect(error?.extensions).toEqual({ code: 'GRAPHQL_PARSE_FAILED' });
  });
});

describe('over graphql-ws', () => {
  async function subscribeError(payload: Record<string, unknown>) {
    const socket = new WebSocket(`ws://127.0.0.1:${http.port}/graphql`, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(
      JSON.stringify({
        type: 'connection_init',
        payload: { authorization: `Bearer ${user.token}` },
      }),
    );
    await once(socket, 'message');
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload }));
    const [reply] = await once(socket, 'message');
    socket.close();
    return JSON.parse(String(reply)) as {
      type: string;
      payload: { message: string; extensions?: Record<string, unknown> }[];
    };
  }

  it('codes a syntax error GRAPHQL_PARSE_FAILED (yoga codes it only over HTTP)', async () => {
    const reply = await subscribeError({ query: 'subscription { postStatusChanged {' });
    expect(reply.type).toBe('error');
    expect(reply.payload[0]?.extensions).toEqual({ code: 'GRAPHQL_PARSE_FAILED' });
  });

  it('codes a variable that does not coerce BAD_USER_INPUT', async () => {
    const reply = await subscribeError({
      query: 'query ($n: Int) { posts(first: $n) { edges { cursor } } }',
      variables: { n: 'many' },
    });
    expect(reply.type).toBe('error');
    expect(reply.payload[0]?.message).toMatch(/^Variable "\$n" got invalid value "many"/);
    expect(reply.payload[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT' });
  });
});
