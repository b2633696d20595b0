import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { wsSubscribe } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

/** Input that JavaScript accepts and Postgres refuses answers BAD_USER_INPUT naming the argument. */

let app: TestApp;
let http: HttpServer;
let admin: TestUser;
let postId: string;

beforeAll(async () => {
  app = await startTestApp();
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  admin = await createUser(app.deps.db, 'ADMIN');
  const [post] = await createPosts(app.deps.db, [{ authorId: admin.id }]);
  postId = globalId('Post', post!.id);
});

afterAll(async () => {
  await http?.close();
  await app?.close();
});

interface Answer {
  status: number;
  body: {
    data?: Record<string, any> | null;
    errors?: { message: string; path?: unknown[]; extensions?: Record<string, any> }[];
  };
}

/** Under application/graphql-response+json a request refused before execution answers 400. */
async function post(query: string, variables: Record<string, unknown> = {}): Promise<Answer> {
  const response = await app.yoga.fetch('http://quire.test/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      authorization: `Bearer ${admin.token}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.json() };
}

async function get(search: string): Promise<Answer> {
  const response = await app.yoga.fetch(`http://quire.test/graphql?${search}`, {
    headers: { authorization: `Bearer ${admin.token}` },
  });
  return { status: response.status, body: await response.json() };
}

const postCount = async () =>
  Number(
    (
      await app.deps.db
        .selectFrom('posts')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

/**
 * Refused before execution: 400. A cursor's values are read against the connection's ordering
 * inside the field's resolver (before its SQL): an execution error, so 200 with `data: null`.
 */
function expectRefused(answer: Answer, argument: string, status: 400 | 200 = 400) {
  expect(answer.status).toBe(status);
  expect(answer.body.data ?? null).toBeNull();
  expect(answer.body.errors).toHaveLength(1);
  const [error] = answer.body.errors!;
  expect(error!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument });
  expect(error!.message).toContain(argument);
}

/** A real cursor of `posts` with one part replaced. */
async function forgedPostsCursor(
  part: number,
  value: unknown,
  query = '{ posts(first: 1) { edges { cursor } } }',
) {
  const answer = await post(query);
  const connection = Object.values(answer.body.data!)[0] as { edges: { cursor: string }[] };
  const parts = JSON.parse(Buffer.from(connection.edges[0]!.cursor, 'base64url').toString());
  parts[part] = value;
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

describe('strings Postgres cannot store', () => {
  const create = 'mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }';

  it.each([
    ['a NUL character in a variable', { title: 'a\u0000b', body: 'x' }, 'input.title'],
    ['an unpaired high surrogate', { title: 'ok', body: 'x\ud800' }, 'input.body'],
    [
      'an unpaired low surrogate in a list item',
      { title: 'ok', body: 'x', tags: ['a', '\udc00'] },
      'input.tags[1]',
    ],
  ])('createPost with %s is refused before any row is written', async (_name, input, argument) => {
    const before = await postCount();
    expectRefused(await post(create, { input }), argument);
    expect(await postCount()).toBe(before);
  });

  it('a NUL written as a literal escape in the document is refused too', async () => {
    const before = await postCount();
    expectRefused(
      await post(
        'mutation { createPost(input: { title: "a\\u0000b", body: "x" }) { post { id } } }',
      ),
      'input.title',
    );
    expect(await postCount()).toBe(before);
  });

  it.each([
    [
      'searchPosts(query:)',
      'query($v: String!) { searchPosts(query: $v) { totalCount } }',
      'query',
    ],
    [
      'posts(filter.search)',
      'query($v: String) { posts(filter: { search: $v }) { totalCount } }',
      'filter.search',
    ],
    [
      'posts(filter.tag)',
      'query($v: String) { posts(filter: { tag: $v }) { totalCount } }',
      'filter.tag',
    ],
    ['post(slug:)', 'query($v: String) { post(slug: $v) { id } }', 'slug'],
    [
      'createApiToken(input.name)',
      'mutation($v: String!) { createApiToken(input: { name: $v }) { token } }',
      'input.name',
    ],
  ])('%s with a NUL is refused', async (_name, query, argument) => {
    expectRefused(await post(query, { v: 'a\u0000b' }), argument);
  });

  it('a string longer than any column is refused by name', async () => {
    expectRefused(
      await post('query($v: String) { post(slug: $v) { id } }', { v: 'x'.repeat(200_001) }),
      'slug',
    );
  });

  it('the check runs inside fragments too', async () => {
    expectRefused(
      await post('query($v: String) { ...F } fragment F on Query { post(slug: $v) { id } }', {
        v: '\u0000',
      }),
      'slug',
    );
  });
});

describe('ids past int8', () => {
  const past = globalId('Post', '9223372036854775808');

  it.each([
    ['post(id:)', 'query($v: ID) { post(id: $v) { id } }', 'id'],
    [
      'posts(filter.authorId)',
      'query($v: ID) { posts(filter: { authorId: $v }) { totalCount } }',
      'filter.authorId',
    ],
    [
      'deletePost(input.id)',
      'mutation($v: ID!) { deletePost(input: { id: $v }) { deletedPostId } }',
      'input.id',
    ],
    [
      'addComment(input.postId)',
      'mutation($v: ID!) { addComment(input: { postId: $v, body: "x" }) { comment { id } } }',
      'input.postId',
    ],
  ])('%s answers BAD_USER_INPUT', async (_name, query, argument) => {
    const id = argument === 'filter.authorId' ? globalId('User', '9223372036854775808') : past;
    expectRefused(await post(query, { v: id }), argument);
  });

  it('the largest int8 id is accepted and simply not found', async () => {
    const answer = await post('query($v: ID) { post(id: $v) { id } }', {
      v: globalId('Post', '9223372036854775807'),
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ data: { post: null } });
  });

  it('an id of another type names the argument', async () => {
    expectRefused(
      await post('query($v: ID) { post(id: $v) { id } }', { v: globalId('Nope', '1') }),
      'id',
    );
  });

  it.each([
    ['a raw database id', '1'],
    ['a token id past int8', globalId('ApiToken', '9223372036854775808')],
    ['the id of a post', globalId('Post', '1')],
  ])('revokeApiToken with %s answers BAD_USER_INPUT naming input.id', async (_name, id) => {
    expectRefused(
      await post('mutation($v: ID!) { revokeApiToken(input: { id: $v }) { apiToken { id } } }', {
        v: id,
      }),
      'input.id',
    );
  });

  it('pipelineRun(afterEventId:) over graphql-ws answers BAD_USER_INPUT naming it', async () => {
    const subscription = wsSubscribe(
      `ws://127.0.0.1:${http.port}/graphql`,
      'subscription($id: ID!, $after: ID) { pipelineRun(id: $id, afterEventId: $after) { id } }',
      {
        id: globalId('PipelineRun', '1'),
        after: globalId('PipelineEvent', '99999999999999999999'),
      },
      { token: admin.token },
    );
    try {
      const error = await subscription.next().then(
        () => null,
        (errors: unknown) => errors,
      );
      expect(error).toEqual([
        expect.objectContaining({
          extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', argument: 'afterEventId' }),
        }),
      ]);
    } finally {
      await subscription.dispose();
    }
  });

  it('pipelineRun(id:) over SSE answers BAD_USER_INPUT naming it', async () => {
    const response = await fetch(`http://127.0.0.1:${http.port}/graphql`, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: `Bearer ${admin.token}`,
      },
      body: JSON.stringify({
        query: 'subscription($id: ID!) { pipelineRun(id: $id) { id } }',
        variables: { id: globalId('PipelineRun', '9223372036854775808') },
      }),
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    expect(response.status).toBeLessThan(500);
    expect(text).toContain('"code":"BAD_USER_INPUT"');
    expect(text).toContain('"argument":"id"');
  });
});

describe('values inside cursors', () => {
  const page = 'query($after: String) { posts(first: 1, after: $after) { totalCount } }';

  it.each([
    ['an id past int8', 3, '9999999999999999999'],
    ['an impossible date', 2, '2026-02-30 00:00:00+00'],
    ['year 0', 2, '0000-01-01 00:00:00+00'],
    ['a year past Postgres', 2, '9999999-01-01 00:00:00+00'],
    ['a number for a timestamp', 2, 1],
  ])('a posts cursor with %s is refused as `after`', async (_name, part, value) => {
    const after = await forgedPostsCursor(part, value);
    expectRefused(await post(page, { after }), 'after', part === 3 ? 400 : 200);
  });

  it('a title cursor with a NUL is refused', async () => {
    const titles = '{ posts(first: 1, orderBy: { field: TITLE }) { edges { cursor } } }';
    const after = await forgedPostsCursor(2, 'a\u0000b', titles);
    expectRefused(
      await post(
        'query($after: String) { posts(first: 1, after: $after, orderBy: { field: TITLE }) { totalCount } }',
        { after },
      ),
      'after',
      200,
    );
  });

  it('a search cursor with a rank past float4 is refused', async () => {
    const search = '{ searchPosts(query: "pipelines", first: 1) { edges { cursor } } }';
    for (const rank of [1e300, 1e-300]) {
      const before = await forgedPostsCursor(2, rank, search);
      expectRefused(
        await post(
          'query($b: String) { searchPosts(query: "pipelines", last: 1, before: $b) { totalCount } }',
          { b: before },
        ),
        'before',
        200,
      );
    }
  });
});

describe('malformed GET parameters', () => {
  it.each([
    ['extensions', 'query={__typename}&extensions=notjson'],
    ['variables', 'query={__typename}&variables={bad'],
  ])('a `%s` that is not JSON answers 400 BAD_REQUEST', async (argument, search) => {
    const answer = await get(search);
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_REQUEST', argument });
  });
});

describe('node and nodes', () => {
  it('an id of an unknown type nulls node with a coded error', async () => {
    const answer = await post('query($id: ID!) { node(id: $id) { id } }', {
      id: globalId('Nope', '1'),
    });
    expect(answer.status).toBe(200);
    expect(answer.body.data).toEqual({ node: null });
    expect(answer.body.errors?.[0]).toMatchObject({
      path: ['node'],
      extensions: { code: 'BAD_USER_INPUT', argument: 'id' },
    });
  });

  it('node(id: "garbage") nulls that field while its siblings answer', async () => {
    const answer = await post('{ __typename node(id: "garbage") { id } }');
    expect(answer.status).toBe(200);
    expect(answer.body.data).toEqual({ __typename: 'Query', node: null });
    expect(answer.body.errors).toEqual([
      expect.objectContaining({
        path: ['node'],
        extensions: { code: 'BAD_USER_INPUT', argument: 'id' },
      }),
    ]);
  });

  it('nodes returns the valid ids and an error for each bad one', async () => {
    const answer = await post('query($ids: [ID!]!) { nodes(ids: $ids) { id } }', {
      ids: ['garbage', postId, globalId('Post', '9223372036854775808')],
    });
    expect(answer.status).toBe(200);
    expect(answer.body.data).toEqual({ nodes: [null, { id: postId }, null] });
    expect(answer.body.errors?.map((error) => [error.path, error.extensions?.argument])).toEqual([
      [['nodes', 0], 'ids[0]'],
      [['nodes', 2], 'ids[2]'],
    ]);
  });
});
