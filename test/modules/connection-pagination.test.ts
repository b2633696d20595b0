import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';

let app: TestApp;
let author: TestUser;
let commentedPostId: string;
let tagId: string;

interface Connection {
  edges: { node: { id: string } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const connectionFields = 'edges { node { id } } pageInfo { hasNextPage endCursor }';

/** Five distinct timestamps for many rows: every page boundary falls inside a tie. */
const tiedTimestamp = (index: number) => `2026-02-01 00:00:0${index % 5}.5+00`;

beforeAll(async () => {
  app = await startTestApp();
  const db = app.deps.db;
  author = await createUser(db, 'AUTHOR', 'Walker');
  await db
    .insertInto('users')
    .values(
      Array.from({ length: 25 }, (_, index) => ({
        email: `tied-${index}@example.com`,
        name: `Tied ${index}`,
        created_at: tiedTimestamp(index),
      })),
    )
    .execute();
  const users = await db.selectFrom('users').select('id').execute();

  // 20 published and 10 draft posts by one author, with tied creation times.
  const posts = await createPosts(
    db,
    Array.from({ length: 30 }, (_, index) => ({
      authorId: author.id,
      status: index % 3 === 0 ? ('DRAFT' as const) : ('PUBLISHED' as const),
      createdAt: tiedTimestamp(index),
    })),
  );
  // Posts by someone else, so User.posts has rows to leave out.
  await createPosts(db, [{ authorId: users[1]!.id }, { authorId: users[2]!.id }]);

  commentedPostId = posts[1]!.id;
  await db
    .insertInto('comments')
    .values(
      Array.from({ length: 30 }, (_, index) => ({
        post_id: commentedPostId,
        author_id: users[index % users.length]!.id,
        body: `Comment ${index}`,
        created_at: tiedTimestamp(index),
      })),
    )
    .execute();
  await db
    .insertInto('comments')
    .values({ post_id: posts[2]!.id, author_id: author.id, body: 'Elsewhere' })
    .execute();

  const tags = await db
    .insertInto('tags')
    .values(
      Array.from({ length: 30 }, (_, index) => ({
        name: `topic-${String(index).padStart(2, '0')}`,
      })),
    )
    .returning('id')
    .execute();
  tagId = tags[0]!.id;
  // Every post but the last few carries the first tag, drafts included (anonymous readers skip
  // them); each other tag labels one post, so those on a draft only are hidden from `tags`.
  await db
    .insertInto('post_tags')
    .values([
      ...posts.slice(0, 25).map((post) => ({ post_id: post.id, tag_id: tagId })),
      ...tags.slice(1).map((tag, index) => ({ post_id: posts[index + 1]!.id, tag_id: tag.id })),
    ])
    .execute();
});

afterAll(() => app?.close());

async function ids(query: ReturnType<typeof sql<{ id: string }>>): Promise<string[]> {
  const { rows } = await query.execute(app.deps.db);
  return rows.map((row) => row.id);
}

interface Case {
  name: string;
  query: string;
  variables: () => Record<string, unknown>;
  token?: () => string;
  connection: (data: Record<string, any>) => Connection;
  expected: () => Promise<string[]>;
}

const cases: Case[] = [
  {
    name: 'Post.comments',
    query: `query($id: ID!, $first: Int, $after: String) {
      node(id: $id) { ... on Post { comments(first: $first, after: $after) { ${connectionFields} } } }
    }`,
    variables: () => ({ id: globalId('Post', commentedPostId) }),
    connection: (data) => data.node.comments,
    expected: () =>
      ids(sql`select id from comments where post_id = ${commentedPostId}
              order by created_at desc, id desc`),
  },
  {
    name: 'User.posts(filter)',
    query: `query($id: ID!, $first: Int, $after: String) {
      node(id: $id) { ... on User {
        posts(first: $first, after: $after, filter: { status: PUBLISHED }) { ${connectionFields} }
      } }
    }`,
    variables: () => ({ id: author.globalId }),
    // The author sees their drafts too: only the filter leaves them out.
    token: () => author.token,
    connection: (data) => data.node.posts,
    expected: () =>
      ids(sql`select id from posts where author_id = ${author.id} and status = 'PUBLISHED'
              order by created_at desc, id desc`),
  },
  {
    name: 'Tag.posts',
    query: `query($id: ID!, $first: Int, $after: String) {
      node(id: $id) { ... on Tag { posts(first: $first, after: $after) { ${connectionFields} } } }
    }`,
    variables: () => ({ id: globalId('Tag', tagId) }),
    connection: (data) => data.node.posts,
    expected: () =>
      ids(sql`select posts.id from posts join post_tags on post_tags.post_id = posts.id
              where post_tags.tag_id = ${tagId} and posts.status = 'PUBLISHED'
              order by posts.created_at desc, posts.id desc`),
  },
  {
    name: 'users',
    query: `query($first: Int, $after: String) { users(first: $first, after: $after) { ${connectionFields} } }`,
    variables: () => ({}),
    connection: (data) => data.users,
    expected: () => ids(sql`select id from users order by created_at desc, id desc`),
  },
  {
    name: 'tags',
    query: `query($first: Int, $after: String) { tags(first: $first, after: $after) { ${connectionFields} } }`,
    variables: () => ({}),
    connection: (data) => data.tags,
    expected: () =>
      ids(sql`select id from tags where exists (
                select 1 from post_tags join posts on posts.id = post_tags.post_id
                where post_tags.tag_id = tags.id and posts.status = 'PUBLISHED')
              order by name asc, id asc`),
  },
];

describe('after-paging over nested and list connections', () => {
  it.each(
    cases.flatMap((testCase) => [1, 7].map((size) => [testCase.name, size, testCase] as const)),
  )('%s with first: %i returns every row once, in order', async (_name, size, testCase) => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let guard = 0; guard < 200; guard += 1) {
      const result = await app.gql(
        testCase.query,
        { ...testCase.variables(), first: size, after },
        { token: testCase.token?.() },
      );
      expect(result.errors).toBeUndefined();
      const connection = testCase.connection(result.data!);
      expect(connection.edges.length).toBeLessThanOrEqual(size);
      seen.push(...connection.edges.map((edge) => localId(edge.node.id)));
      if (!connection.pageInfo.hasNextPage) break;
      after = connection.pageInfo.endCursor;
    }
    const expected = await testCase.expected();
    expect(expected.length).toBeGreaterThan(size * 2);
    expect(seen).toEqual(expected);
  });
});
