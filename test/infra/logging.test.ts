import { hostname } from 'node:os';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { sseEvents, wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

type LogLine = Record<string, any> & { level: number; msg: string };

const lines: LogLine[] = [];
const ERROR = 50;
const WARN = 40;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let app: TestApp;
let http: HttpServer;
let url: string;
let author: TestUser;

beforeAll(async () => {
  const logger = createLogger(
    { LOG_LEVEL: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  app = await startTestApp({ RESPONSE_CACHE: 'off', CACHE: 'off' }, undefined, logger);
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

/** POSTs through the real listener; returns the body, the echoed id and the lines it logged. */
async function post(
  query: string,
  options: { token?: string; requestId?: string; variables?: Record<string, unknown> } = {},
) {
  const from = lines.length;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.requestId === undefined ? {} : { 'x-request-id': options.requestId }),
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const body = (await response.json()) as {
    data?: any;
    errors?: { extensions?: { code?: string } }[];
  };
  return { body, id: response.headers.get('x-request-id'), logged: lines.slice(from) };
}

const tagsQuery = '{ tags(first: 5) { edges { node { name } } } }';

/** Makes the tags query fail inside Postgres (a real, unexpected server error), then restores. */
async function withoutTagsTable<T>(work: () => Promise<T>): Promise<T> {
  await sql`alter table tags rename to tags_gone`.execute(app.deps.db);
  try {
    return await work();
  } finally {
    await sql`alter table tags_gone rename to tags`.execute(app.deps.db);
  }
}

describe('unexpected errors', () => {
  it('are logged exactly once, at error level, as an Error with its stack and the request id', async () => {
    const { body, id, logged } = await withoutTagsTable(() =>
      post(tagsQuery, { requestId: 'unexpected-1' }),
    );
    expect(body.errors?.map((error) => error.extensions?.code)).toEqual(['INTERNAL_SERVER_ERROR']);
    expect(JSON.stringify(body)).not.toContain('tags_gone');
    expect(id).toBe('unexpected-1');
    const errors = logged.filter((line) => line.level >= ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      reqId: 'unexpected-1',
      err: { type: expect.any(String), message: expect.stringContaining('"tags"') },
    });
    expect(errors[0]!.err.stack).toMatch(/\n\s+at /);
  });

  it('over graphql-ws: once, with an id of the operation', async () => {
    const from = lines.length;
    const results = await withoutTagsTable(async () => {
      const client = wsSubscribe(url.replace('http', 'ws'), tagsQuery, {}, { token: author.token });
      const collected = [];
      for await (const result of client) collected.push(result);
      await client.dispose();
      return collected;
    });
    expect(results.map((result) => result.errors?.[0]?.extensions?.code)).toEqual([
      'INTERNAL_SERVER_ERROR',
    ]);
    const errors = lines.slice(from).filter((line) => line.level >= ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.reqId).toMatch(UUID);
    expect(errors[0]!.err.stack).toMatch(/\n\s+at /);
  });
});

describe('client errors', () => {
  it('a CONFLICT from a constraint and a BAD_USER_INPUT stay below warn, at debug with their code', async () => {
    const [draft] = await createPosts(app.deps.db, [{ authorId: author.id, status: 'DRAFT' }]);
    const start = `mutation($id: ID!) { startPipeline(input: { postId: $id }) { pipelineRun { id } } }`;
    const variables = { id: globalId('Post', draft!.id) };
    const first = await post(start, { token: author.token, variables });
    expect(first.body.errors).toBeUndefined();
    const conflict = await post(start, { token: author.token, variables, requestId: 'conflict-1' });
    expect(conflict.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const badInput = await post('{ posts(first: 100000) { edges { cursor } } }');
    expect(badInput.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    for (const { logged } of [conflict, badInput])
      expect(logged.filter((line) => line.level >= WARN)).toEqual([]);
    expect(conflict.logged).toContainEqual(
      expect.objectContaining({ level: 20, reqId: 'conflict-1', code: 'CONFLICT' }),
    );
  });
});

describe('request ids', () => {
  it('keep pino’s pid and hostname on every line', async () => {
    const { logged } = await post('{ __typename }');
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged)
      expect(line).toMatchObject({ pid: process.pid, hostname: hostname() });
  });

  it('echo a well-formed x-request-id and put it on the request’s lines', async () => {
    const { id, logged } = await post('query Named { __typename }', { requestId: 'abc-123:X_9.z' });
    expect(id).toBe('abc-123:X_9.z');
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'request', operation: 'Named', reqId: 'abc-123:X_9.z' }),
    );
  });

  it('name a subscription over SSE on its request line, as a query is named', async () => {
    const from = lines.length;
    const abort = new AbortController();
    const events = sseEvents(
      url,
      'subscription Watch { postStatusChanged { status } }',
      {},
      {
        signal: abort.signal,
      },
    );
    // The stream is open once its response has been sent: the request line is logged then.
    const pending = events.next();
    await expect
      .poll(() => lines.slice(from).find((line) => line.msg === 'request'))
      .toMatchObject({ operation: 'Watch', status: 200 });
    abort.abort();
    await pending;
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['with spaces', 'two words'],
    ['with markup', '<script>'],
    ['too long', 'a'.repeat(129)],
  ])('generate an id when the header is %s', async (_case, given) => {
    const { id, logged } = await post('{ __typename }', { requestId: given });
    expect(id).toMatch(UUID);
    expect(logged).toContainEqual(expect.objectContaining({ msg: 'request', reqId: id }));
  });

  it('one request line per GraphQL request, none for /health, with yoga’s own debug lines', async () => {
    const from = lines.length;
    const health = await fetch(url.replace('/graphql', '/health'));
    expect(health.status).toBe(200);
    expect(lines.slice(from).filter((line) => line.msg === 'request')).toEqual([]);
    const { id, logged } = await post('query Counted { __typename }');
    expect(logged.filter((line) => line.msg === 'request')).toEqual([
      expect.objectContaining({ operation: 'Counted', status: 200, sqlQueries: 0, reqId: id }),
    ]);
    // LOG_LEVEL=debug here: yoga's per-request debug lines are still written when enabled.
    expect(logged).toContainEqual(
      expect.objectContaining({ component: 'yoga', msg: 'Processing GraphQL Parameters' }),
    );
  });

  it('differ between requests', async () => {
    const [a, b] = await Promise.all([post('{ __typename }'), post('{ __typename }')]);
    expect(a.id).not.toBe(b.id);
  });
});
