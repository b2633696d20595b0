import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

/**
 * The read path's shortcuts (bench/analysis.md, issue 12, data path) keep what they replace:
 * authors answered from joined rows follow the same field rules as loaded ones, selections
 * collected once per document still follow each request's `@include`/`@skip`, and with
 * CACHE=off rows by id come back in key order with misses counted.
 */
let app: TestApp;
let writer: TestUser;
let reader: TestUser;
let editor: TestUser;
let postIds: string[];

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  writer = await createUser(db, 'AUTHOR', 'Path Writer');
  reader = await createUser(db, 'VIEWER', 'Path Reader');
  editor = await createUser(db, 'EDITOR', 'Path Editor');
  const posts = await createPosts(
    db,
    Array.from({ length: 3 }, (_, index) => ({
      authorId: writer.id,
      title: `Path ${index}`,
      status: 'PUBLISHED' as const,
      createdAt: new Date(Date.UTC(2030, 0, 1, 0, index)).toISOString(),
    })),
  );
  postIds = posts.map((post) => post.id);
  await db
    .insertInto('comments')
    .values([
      { post_id: postIds[0]!, author_id: reader.id, body: 'First' },
      { post_id: postIds[0]!, author_id: writer.id, body: 'Second' },
    ])
    .execute();
});

afterAll(() => app?.close());

async function run(query: string, variables: Record<string, unknown> = {}, token?: string) {
  const result = await app.gql(query, variables, { debug: true, token });
  expect(result.errors).toBeUndefined();
  return {
    data: result.data!,
    queries: result.extensions?.sql.queries as number,
    cache: result.extensions?.cache as Record<string, { misses: number }> | undefined,
  };
}

const pageQuery = `query($id: ID!) {
  post(id: $id) {
    author { name email }
    comments(first: 10) { edges { node { body author { id name email createdAt } } } }
  }
}`;

describe('authors from joined rows', () => {
  it('answer a comment page’s authors with the email rule of a loaded user', async () => {
    const id = globalId('Post', postIds[0]!);
    const authorsAs = async (token?: string) => {
      const { data, queries } = await run(pageQuery, { id }, token);
      // The post with its comment page and their authors, one statement (a cold token adds its
      // own lookups).
      if (!token) expect(queries).toBe(1);
      return data.post.comments.edges.map(
        (edge: { node: { author: unknown } }) => edge.node.author,
      );
    };
    const row = (user: TestUser) =>
      app.deps.db
        .selectFrom('users')
        .select(['name', 'email', 'created_at'])
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow();
    const expected = async (user: TestUser, seesEmail: boolean) => {
      const { name, email, created_at } = await row(user);
      return {
        id: user.globalId,
        name,
        email: seesEmail ? email : null,
        createdAt: created_at.replace(' ', 'T').replace(/\+00$/, 'Z'),
      };
    };
    const newestFirst = [writer, reader];
    expect(await authorsAs()).toEqual(
      await Promise.all(newestFirst.map((user) => expected(user, false))),
    );
    expect(await authorsAs(reader.token)).toEqual(
      await Promise.all(newestFirst.map((user) => expected(user, user === reader))),
    );
    expect(await authorsAs(editor.token)).toEqual(
      await Promise.all(newestFirst.map((user) => expected(user, true))),
    );
  });

  it('answer a post list’s authors the same way, in one statement', async () => {
    const query = '{ posts(first: 3) { edges { node { title author { name email } } } } }';
    const anonymous = await run(query);
    expect(anonymous.queries).toBe(1);
    expect(anonymous.data.posts.edges.map((edge: any) => edge.node)).toEqual(
      ['Path 2', 'Path 1', 'Path 0'].map((title) => ({
        title,
        author: { name: 'Path Writer', email: null },
      })),
    );
    const own = await run(query, {}, writer.token);
    const { email } = await app.deps.db
      .selectFrom('users')
      .select('email')
      .where('id', '=', writer.id)
      .executeTakeFirstOrThrow();
    expect(own.data.posts.edges.map((edge: any) => edge.node.author.email)).toEqual([
      email,
      email,
      email,
    ]);
  });
});

describe('selections collected once per document', () => {
  it('still follow each request’s @include and @skip', async () => {
    const query = `query($page: Boolean!, $count: Boolean!) {
      posts(first: 2) {
        totalCount @include(if: $count)
        edges @include(if: $page) { node { title } }
      }
    }`;
    const both = await run(query, { page: true, count: true });
    expect(both.queries).toBe(2);
    expect(both.data.posts.edges).toHaveLength(2);
    const pageOnly = await run(query, { page: true, count: false });
    expect(pageOnly.queries).toBe(1);
    expect(pageOnly.data.posts.totalCount).toBeUndefined();
    const countOnly = await run(query, { page: false, count: true });
    expect(countOnly.queries).toBe(1);
    expect(countOnly.data.posts.edges).toBeUndefined();
    const skipped = await run(query.replace('@include(if: $page)', '@skip(if: $page)'), {
      page: true,
      count: false,
    });
    expect(skipped.queries).toBe(0);
  });

  it('keep each field’s own selection apart within one document, request after request', async () => {
    const query = `{
      narrow: posts(first: 1) { edges { node { title } } }
      wide: posts(first: 1) { edges { node { body } } }
      counted: posts(first: 1) { edges { node { comments { totalCount } } } }
    }`;
    for (let round = 0; round < 3; round++) {
      const { data, queries } = await run(query);
      // Three widths of the list: three statements, the count riding in the third.
      expect(queries).toBe(3);
      expect(data.narrow.edges[0].node).toEqual({ title: 'Path 2' });
      expect(Object.keys(data.wide.edges[0].node)).toEqual(['body']);
      expect(data.counted.edges[0].node.comments.totalCount).toBe(0);
    }
  });
});

describe('CACHE=off', () => {
  it('returns rows by id in key order, null for a missing id, and counts every key a miss', async () => {
    const ids = [postIds[2]!, '999999999', postIds[0]!].map((id) => globalId('Post', id));
    const { data, queries, cache } = await run(
      'query($ids: [ID!]!) { nodes(ids: $ids) { ... on Post { title } } }',
      { ids },
    );
    expect(data.nodes).toEqual([{ title: 'Path 2' }, null, { title: 'Path 0' }]);
    expect(queries).toBe(1);
    expect(cache?.post?.misses).toBe(3);
  });
});
