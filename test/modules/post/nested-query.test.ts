import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser } from '../../helpers/factories.ts';

const nestedQuery = /* GraphQL */ `
  query Nested($first: Int!) {
    posts(first: $first) {
      edges {
        node {
          id
          title
          author { id name role createdAt }
          tags { name }
          comments(first: 5) { edges { node { body author { name } } } }
        }
      }
    }
  }
`;

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  const authors = await Promise.all(
    [1, 2, 3, 4, 5].map((n) => createUser(db, 'AUTHOR', `Author ${n}`)),
  );
  const commenters = await Promise.all(
    [1, 2, 3].map((n) => createUser(db, 'VIEWER', `Reader ${n}`)),
  );
  const posts = await createPosts(
    db,
    Array.from({ length: 60 }, (_, index) => ({ authorId: authors[index % authors.length]!.id })),
  );
  const tags = await db
    .insertInto('tags')
    .values(['graphql', 'postgres', 'pipelines'].map((name) => ({ name })))
    .returning('id')
    .execute();
  await db
    .insertInto('post_tags')
    .values(
      posts.flatMap((post, index) =>
        tags.slice(0, (index % 3) + 1).map((tag) => ({ post_id: post.id, tag_id: tag.id })),
      ),
    )
    .execute();
  await db
    .insertInto('comments')
    .values(
      posts.flatMap((post, index) =>
        Array.from({ length: 7 }, (_, n) => ({
          post_id: post.id,
          author_id: commenters[(index + n) % commenters.length]!.id,
          body: `Comment ${n} on ${post.id}`,
        })),
      ),
    )
    .execute();
});

afterAll(() => app?.close());

describe('nested query SQL budget (N+1 proof)', () => {
  it.each([5, 50])('runs at most one statement per level for %i posts', async (first) => {
    const result = await app.gql(nestedQuery, { first }, { debug: true });
    expect(result.errors).toBeUndefined();
    const edges = result.data!.posts.edges;
    expect(edges).toHaveLength(first);
    for (const { node } of edges) {
      expect(node.author.name).toMatch(/^Author \d$/);
      expect(node.tags.length).toBeGreaterThan(0);
      expect(node.comments.edges).toHaveLength(5);
      for (const comment of node.comments.edges)
        expect(comment.node.author.name).toMatch(/^Reader \d$/);
    }
    // 5 levels: posts, post authors (users), tags, comments (LATERAL), comment authors. The post
    // and comment pages join their authors and prime the user loader, so 3 statements.
    expect(result.extensions?.sql).toEqual({ queries: 3 });
    // The author a page brought along equals the author the loader loads on its own.
    const post = edges[0].node;
    const alone = await app.gql(
      'query($id: ID!) { post(id: $id) { author { id name role createdAt } } }',
      { id: post.id },
      { debug: true },
    );
    expect(alone.data!.post.author).toEqual(post.author);
    // A post by id joins its author too: one statement.
    expect(alone.extensions?.sql).toEqual({ queries: 1 });
  });

  it('issues a statement per parent with LOADER_BATCHING=off (the N+1 baseline switch)', async () => {
    const naive = await startTestApp({ CACHE: 'off', LOADER_BATCHING: 'off' }, app);
    try {
      const batched = await app.gql(nestedQuery, { first: 50 }, { debug: true });
      const result = await naive.gql(nestedQuery, { first: 50 }, { debug: true });
      expect(result.data).toEqual(batched.data);
      // 1 page + 5 distinct authors + 50 tag lists + 50 comment pages + 3 distinct commenters.
      expect(result.extensions?.sql).toEqual({ queries: 109 });
    } finally {
      await naive.close();
    }
  });

  it('omits the SQL count without the debug header', async () => {
    const result = await app.gql(nestedQuery, { first: 1 });
    expect(result.extensions?.sql).toBeUndefined();
  });
});
