import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

let app: TestApp;
let author: TestUser;

const createPost = /* GraphQL */ `
  mutation Create($input: CreatePostInput!) {
    createPost(input: $input) { post { id tags { name } } }
  }
`;
const setPostTags = /* GraphQL */ `
  mutation Tag($id: ID!, $tags: [String!]!) {
    setPostTags(input: { postId: $id, tags: $tags }) { post { id tags { name } } }
  }
`;

/** Tag names linked to each of `postIds`, straight from the table. */
async function linkedTagNames(postIds: readonly string[]): Promise<Map<string, string[]>> {
  const rows = await app.deps.db
    .selectFrom('post_tags')
    .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
    .select(['post_tags.post_id', 'tags.name'])
    .where('post_tags.post_id', 'in', postIds)
    .orderBy('tags.name')
    .execute();
  const byPost = new Map(postIds.map((id) => [id, [] as string[]]));
  for (const row of rows) byPost.get(row.post_id)!.push(row.name);
  return byPost;
}

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_MUTATIONS: '10000' });
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(() => app?.close());

describe('tags created by concurrent writers', () => {
  // More writers than pool connections, so transactions overlap on the same new names.
  const writers = 24;

  it.each([1, 2, 3])(
    'createPost from %i: every concurrent writer links every new tag',
    async (round) => {
      const names = [`race-${round}-a`, `race-${round}-b`, `race-${round}-c`];
      const results = await Promise.all(
        Array.from({ length: writers }, (_, index) =>
          app.gql(
            createPost,
            { input: { title: `Race ${round} ${index}`, body: 'x', tags: names } },
            { token: author.token },
          ),
        ),
      );
      for (const result of results) {
        expect(result.errors).toBeUndefined();
        expect(result.data!.createPost.post.tags).toEqual(names.map((name) => ({ name })));
      }
      const postIds = results.map(
        (result) =>
          Buffer.from(result.data!.createPost.post.id, 'base64url').toString().split(':')[1]!,
      );
      const linked = await linkedTagNames(postIds);
      for (const id of postIds) expect(linked.get(id)).toEqual(names);
      const tags = await app.deps.db
        .selectFrom('tags')
        .select('name')
        .where('name', 'in', names)
        .execute();
      expect(tags).toHaveLength(names.length);
    },
  );

  it('setPostTags: concurrent writers on different posts all keep every new tag', async () => {
    const posts = await createPosts(
      app.deps.db,
      Array.from({ length: writers }, () => ({ authorId: author.id, status: 'DRAFT' as const })),
    );
    const names = ['set-race-a', 'set-race-b', 'set-race-c'];
    const results = await Promise.all(
      posts.map((post) =>
        app.gql(
          setPostTags,
          { id: globalId('Post', post.id), tags: names },
          { token: author.token },
        ),
      ),
    );
    for (const result of results) {
      expect(result.errors).toBeUndefined();
      expect(result.data!.setPostTags.post.tags).toEqual(names.map((name) => ({ name })));
    }
    const linked = await linkedTagNames(posts.map((post) => post.id));
    for (const post of posts) expect(linked.get(post.id)).toEqual(names);
  });
});

describe('tagCloud', () => {
  it.each([0, -1, 101])('refuses first: %i with BAD_USER_INPUT', async (first) => {
    const result = await app.gql(`query($first: Int) { tagCloud(first: $first) { postCount } }`, {
      first,
    });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.argument).toBe('first');
    expect(result.data?.tagCloud ?? null).toBeNull();
  });

  it('accepts the bounds 1 and 100', async () => {
    for (const first of [1, 100]) {
      const result = await app.gql(`query($first: Int) { tagCloud(first: $first) { postCount } }`, {
        first,
      });
      expect(result.errors).toBeUndefined();
    }
  });
});
