import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/infra/logger.ts';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

let app: TestApp;
let author: TestUser;
let tagIds: string[];
let postIds: string[];
/** SQL text of every statement the app sent (SLOW_QUERY_MS=0 logs each one). */
const statements: string[] = [];

const TAGS = 30;
const POSTS = 40;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (line.includes('"slow sql"')) statements.push(JSON.parse(line).sql);
      }
      done();
    },
  });
  app = await startTestApp(
    { CACHE: 'off', SLOW_QUERY_MS: '0' },
    undefined,
    createLogger({ LOG_LEVEL: 'warn' }, sink),
  );
  const { db } = app.deps;
  author = await createUser(db, 'AUTHOR', 'Profile Author');
  const reader = await createUser(db, 'VIEWER', 'Reader');
  // Distinct creation times, so newest-first order is known: post i is i minutes old.
  const posts = await createPosts(
    db,
    Array.from({ length: POSTS }, (_, index) => ({
      authorId: author.id,
      title: `Shape post ${index}`,
      body: `Body ${index} `.repeat(50),
      createdAt: new Date(Date.UTC(2026, 0, 1) - index * 60_000).toISOString(),
    })),
  );
  postIds = posts.map((post) => post.id);
  const tags = await db
    .insertInto('tags')
    .values(Array.from({ length: TAGS }, (_, index) => ({ name: `shape-${index}` })))
    .returning('id')
    .execute();
  tagIds = tags.map((tag) => tag.id);
  // Tag i labels every post whose index is ≥ i: tag 0 has all 40 posts, tag 29 has 11.
  await db
    .insertInto('post_tags')
    .values(
      tags.flatMap((tag, tagIndex) =>
        postIds.slice(tagIndex).map((postId) => ({ post_id: postId, tag_id: tag.id })),
      ),
    )
    .execute();
  await db
    .insertInto('comments')
    .values(
      postIds.flatMap((postId, index) =>
        Array.from({ length: index % 4 }, (_, n) => ({
          post_id: postId,
          author_id: reader.id,
          body: `Comment ${n}`,
        })),
      ),
    )
    .execute();
});

afterAll(() => app?.close());

async function run(query: string, variables: Record<string, unknown> = {}) {
  const result = await app.gql(query, variables, { debug: true });
  expect(result.errors).toBeUndefined();
  return { data: result.data!, queries: result.extensions?.sql.queries as number };
}

describe('statements per shape: only what the selection asks for', () => {
  it('profile with its posts’ comment counts: the user with its post page carrying the counts, one statement', async () => {
    const { data, queries } = await run(
      `query($id: ID!) { node(id: $id) { ... on User { name
        posts(first: 10) { edges { node { id title comments { totalCount } } } } } } }`,
      { id: author.globalId },
    );
    const edges = data.node.posts.edges;
    expect(edges).toHaveLength(10);
    edges.forEach((edge: any, index: number) => {
      expect(edge.node.title).toBe(`Shape post ${index}`);
      expect(edge.node.comments.totalCount).toBe(index % 4);
    });
    expect(queries).toBe(1);
  });

  it('comment counts ride on the post list statement under aliases and fragments; a comment page loads its own', async () => {
    const counted = await run(
      `query($id: ID!) { node(id: $id) { ... on User {
        posts(first: 6) { edges { node { title ...Counted c2: comments(first: 1) { n: totalCount } } } } } } }
       fragment Counted on Post { c1: comments { totalCount } }`,
      { id: author.globalId },
    );
    counted.data.node.posts.edges.forEach((edge: any, index: number) => {
      expect(edge.node.c1.totalCount).toBe(index % 4);
      expect(edge.node.c2.n).toBe(index % 4);
    });
    // The user with its post page, folded into one statement.
    expect(counted.queries).toBe(1);
    const root = await run(
      '{ posts(first: 6) { edges { node { title comments(first: 1) { totalCount edges { node { body } } } } } } }',
    );
    root.data.posts.edges.forEach((edge: any, index: number) => {
      expect(edge.node.comments.totalCount).toBe(index % 4);
      expect(edge.node.comments.edges).toHaveLength(Math.min(1, index % 4));
    });
    // The list, the comment page, the grouped count: a page is not served from the list row.
    expect(root.queries).toBe(3);
  });

  it('totalCount alone runs the count and no page query, through fragments and aliases', async () => {
    const root = await run(
      `query { posts(first: 5) { ...Counted } }
       fragment Counted on PostConnection { n: totalCount }`,
    );
    expect(root).toEqual({ data: { posts: { n: POSTS } }, queries: 1 });
    const nested = await run(
      `query($id: ID!) { node(id: $id) { ... on User { posts(first: 3) { totalCount } } } }`,
      { id: author.globalId },
    );
    expect(nested).toEqual({ data: { node: { posts: { totalCount: POSTS } } }, queries: 2 });
    const tags = await run('query { tags(first: 5) { totalCount } }');
    expect(tags).toEqual({ data: { tags: { totalCount: TAGS } }, queries: 1 });
    const users = await run('query { users(first: 5) { totalCount } }');
    expect(users).toEqual({ data: { users: { totalCount: 2 } }, queries: 1 });
  });

  it('edges and pageInfo alone run the page query and no count', async () => {
    const { data, queries } = await run(
      'query { posts(first: 2) { pageInfo { hasNextPage } edges { node { id } } } }',
    );
    expect(data.posts.edges).toHaveLength(2);
    expect(data.posts.pageInfo.hasNextPage).toBe(true);
    expect(queries).toBe(1);
  });

  it('a field under a fragment spread still loads its page', async () => {
    const { data } = await run(
      `query { posts(first: 2) { ...Page } }
       fragment Page on PostConnection { list: edges { node { title } } }`,
    );
    expect(data.posts.list.map((edge: any) => edge.node.title)).toEqual([
      'Shape post 0',
      'Shape post 1',
    ]);
  });
});

describe('aliased root fields batch by field and arguments, not by path', () => {
  const aliased = (count: number, selection: string) =>
    `query { ${tagIds
      .slice(0, count)
      .map(
        (id, index) =>
          `t${index}: node(id: "${globalId('Tag', id)}") { ... on Tag { name posts(first: 2) { ${selection} } } }`,
      )
      .join('\n')} }`;

  it.each([1, 5, 30])('%i aliases with posts { totalCount }: 2 statements', async (count) => {
    const { data, queries } = await run(aliased(count, 'totalCount'));
    for (let index = 0; index < count; index += 1) {
      expect(data[`t${index}`]).toEqual({
        name: `shape-${index}`,
        posts: { totalCount: POSTS - index },
      });
    }
    expect(queries).toBe(2);
  });

  it.each([1, 5, 30])('%i aliases with a page and its count: 3 statements', async (count) => {
    const { data, queries } = await run(aliased(count, 'totalCount edges { node { title } }'));
    for (let index = 0; index < count; index += 1) {
      expect(data[`t${index}`].posts.edges.map((edge: any) => edge.node.title)).toEqual([
        `Shape post ${index}`,
        `Shape post ${index + 1}`,
      ]);
    }
    expect(queries).toBe(3);
  });

  it('different arguments still get their own pages', async () => {
    const tag = globalId('Tag', tagIds[0]!);
    const { data } = await run(
      `query { a: node(id: "${tag}") { ... on Tag { posts(first: 1) { edges { node { title } } } } }
               b: node(id: "${tag}") { ... on Tag { posts(first: 3) { edges { node { title } } } } } }`,
    );
    expect(data.a.posts.edges).toHaveLength(1);
    expect(data.b.posts.edges).toHaveLength(3);
  });
});

describe('tag page', () => {
  const tagPage = `query($tag: String!, $after: String) {
    posts(first: 7, after: $after, filter: { tag: $tag }) {
      pageInfo { hasNextPage endCursor } edges { node { title } } } }`;

  it('walks the tag’s posts newest first, page by page, in one statement each', async () => {
    const titles: string[] = [];
    let after: string | null = null;
    for (;;) {
      const { data, queries }: { data: any; queries: number } = await run(tagPage, {
        tag: 'shape-25',
        after,
      });
      expect(queries).toBe(1);
      // Walks the tag's links (post_tags_tag_created_idx), not every post with an EXISTS.
      expect(statements.at(-1)).toMatch(/from "post_tags" inner join "posts"/);
      titles.push(...data.posts.edges.map((edge: any) => edge.node.title));
      if (!data.posts.pageInfo.hasNextPage) break;
      after = data.posts.pageInfo.endCursor;
    }
    expect(titles).toEqual(postIds.slice(25).map((_, index) => `Shape post ${25 + index}`));
  });

  it('Tag.posts pages agree with the filtered root list, cursors included', async () => {
    const { data } = await run(
      `query($id: ID!) { node(id: $id) { ... on Tag {
        posts(first: 4) { pageInfo { endCursor } edges { node { title } } } } } }`,
      { id: globalId('Tag', tagIds[3]!) },
    );
    const titles = data.node.posts.edges.map((edge: any) => edge.node.title);
    expect(titles).toEqual(['Shape post 3', 'Shape post 4', 'Shape post 5', 'Shape post 6']);
    const next = await run(tagPage, { tag: 'shape-3', after: data.node.posts.pageInfo.endCursor });
    expect(next.data.posts.edges[0].node.title).toBe('Shape post 7');
  });

  it('follows a post whose creation time changes (the index copy is kept by a trigger)', async () => {
    const oldest = postIds.at(-1)!;
    const moved = async (createdAt: string) =>
      app.deps.db
        .updateTable('posts')
        .set({ created_at: createdAt })
        .where('id', '=', oldest)
        .execute();
    await moved('2027-01-01T00:00:00Z');
    try {
      const { data } = await run(tagPage, { tag: 'shape-25', after: null });
      expect(data.posts.edges[0].node.title).toBe(`Shape post ${POSTS - 1}`);
    } finally {
      await moved(new Date(Date.UTC(2026, 0, 1) - (POSTS - 1) * 60_000).toISOString());
    }
  });
});

describe('SQL width follows the selection', () => {
  it('a list of titles does not select bodies; one asking for bodies does', async () => {
    statements.length = 0;
    await run('query { posts(first: 3) { edges { node { id title } } } }');
    expect(statements).toHaveLength(1);
    expect(statements[0]).not.toMatch(/"body"/);
    expect(statements[0]).not.toMatch(/"users"/);
    statements.length = 0;
    const { data } = await run('query { posts(first: 1) { edges { node { body } } } }');
    expect(data.posts.edges[0].node.body).toBe('Body 0 '.repeat(50));
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/"posts"\."body"/);
  });

  it('narrow and wide selections of the same posts in one request both get their data', async () => {
    const id = globalId('Post', postIds[1]!);
    const { data } = await run(
      `query($id: ID!, $tag: ID!) {
        narrow: posts(first: 2) { edges { node { id title } } }
        wide: posts(first: 2) { edges { node { id title body summary keywords } } }
        byTag: node(id: $tag) { ... on Tag { posts(first: 2) { edges { node { id title } } } } }
        one: node(id: $id) { ... on Post { id body } }
        viaFragment: posts(first: 2) { edges { node { ...Wide } } }
      }
      fragment Wide on Node { ... on Post { body author { name } } }`,
      { id, tag: globalId('Tag', tagIds[0]!) },
    );
    expect(data.narrow.edges.map((edge: any) => edge.node.id)).toEqual(
      data.wide.edges.map((edge: any) => edge.node.id),
    );
    data.wide.edges.forEach((edge: any, index: number) => {
      expect(edge.node).toMatchObject({ body: `Body ${index} `.repeat(50), keywords: [] });
    });
    expect(data.byTag.posts.edges.map((edge: any) => edge.node.id)).toEqual(
      data.narrow.edges.map((edge: any) => edge.node.id),
    );
    expect(data.one).toEqual({ id, body: 'Body 1 '.repeat(50) });
    data.viaFragment.edges.forEach((edge: any, index: number) => {
      expect(edge.node).toEqual({
        body: `Body ${index} `.repeat(50),
        author: { name: 'Profile Author' },
      });
    });
  });

  it('wide fields under @include and @skip are seen with the request’s variables', async () => {
    // @include/@skip run on graphql-js (no compiled plan): its info gives the same selection.
    const query = `query($yes: Boolean!) { posts(first: 2) { edges { node {
      title body @include(if: $yes) summary @skip(if: $yes) } } } }`;
    statements.length = 0;
    const shown = await run(query, { yes: true });
    expect(shown.data.posts.edges[1].node.body).toBe('Body 1 '.repeat(50));
    expect(shown.queries).toBe(1);
    expect(statements[0]).toMatch(/"posts"\."body"/);
    statements.length = 0;
    const hidden = await run(query, { yes: false });
    expect(hidden.data.posts.edges[1].node).toEqual({ title: 'Shape post 1', summary: null });
    expect(hidden.queries).toBe(1);
  });
});
