import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import {
  createPosts,
  createUser,
  globalId,
  localId,
  type TestUser,
} from '../../helpers/factories.ts';

let app: TestApp;
let ada: TestUser;
let grace: TestUser;
let posts: { id: string; slug: string }[];

const titles = (result: { data?: any }, field: string) =>
  result.data![field].edges.map((edge: { node: { title: string } }) => edge.node.title);

beforeAll(async () => {
  app = await startTestApp();
  ada = await createUser(app.deps.db, 'AUTHOR', 'Ada');
  grace = await createUser(app.deps.db, 'AUTHOR', 'Grace');
  posts = await createPosts(app.deps.db, [
    {
      authorId: ada.id,
      title: 'Compilers for everyone',
      body: 'A compiler turns source into machine code.',
      createdAt: '2026-01-01 10:00:00+00',
    },
    {
      authorId: ada.id,
      title: 'Analytical engines',
      body: 'Engines that compute tables of numbers.',
      createdAt: '2026-01-02 10:00:00+00',
    },
    {
      authorId: grace.id,
      title: 'Debugging moths',
      body: 'A moth was found in the relay; the compiler was fine.',
      createdAt: '2026-01-03 10:00:00+00',
    },
    {
      authorId: grace.id,
      title: 'Secret draft',
      body: 'compiler compiler compiler',
      status: 'DRAFT',
      createdAt: '2026-01-04 10:00:00+00',
    },
  ]);
  const [history] = await app.deps.db
    .insertInto('tags')
    .values({ name: 'history' })
    .returning('id')
    .execute();
  await app.deps.db
    .insertInto('post_tags')
    .values(
      [posts[1]!, posts[2]!, posts[3]!].map((post) => ({ post_id: post.id, tag_id: history!.id })),
    )
    .execute();
});

afterAll(() => app?.close());

describe('queries', () => {
  it('filters posts by status, author, tag and search, and counts them', async () => {
    const query = `query($filter: PostFilter) { posts(filter: $filter) { totalCount edges { node { title } } } }`;
    const byAuthor = await app.gql(query, { filter: { authorId: grace.globalId } });
    expect(titles(byAuthor, 'posts')).toEqual(['Debugging moths']);
    expect(byAuthor.data!.posts.totalCount).toBe(1);
    const ownDrafts = await app.gql(
      query,
      { filter: { authorId: grace.globalId, status: 'DRAFT' } },
      { token: grace.token },
    );
    expect(titles(ownDrafts, 'posts')).toEqual(['Secret draft']);
    const byTag = await app.gql(query, { filter: { tag: 'history' } });
    expect(titles(byTag, 'posts')).toEqual(['Debugging moths', 'Analytical engines']);
    const bySearch = await app.gql(query, { filter: { search: 'compiler' } });
    expect(titles(bySearch, 'posts').sort()).toEqual(['Compilers for everyone', 'Debugging moths']);
  });

  it('orders by title, publication and update time', async () => {
    const query = `query($orderBy: PostOrder) { posts(orderBy: $orderBy) { edges { node { title } } } }`;
    expect(
      titles(await app.gql(query, { orderBy: { field: 'TITLE', direction: 'ASC' } }), 'posts'),
    ).toEqual(['Analytical engines', 'Compilers for everyone', 'Debugging moths']);
    await app.deps.db
      .updateTable('posts')
      .set({ updated_at: '2099-01-01 00:00:00+00' })
      .where('id', '=', posts[0]!.id)
      .execute();
    expect(
      titles(
        await app.gql(query, { orderBy: { field: 'UPDATED_AT', direction: 'DESC' } }),
        'posts',
      )[0],
    ).toBe('Compilers for everyone');
    expect(
      titles(
        await app.gql(query, { orderBy: { field: 'PUBLISHED_AT', direction: 'ASC' } }),
        'posts',
      ),
    ).toHaveLength(3);
  });

  it('ranks full-text search results and pages through them', async () => {
    const query = `query($q: String!, $after: String) { searchPosts(query: $q, first: 1, after: $after) {
      totalCount edges { node { title } } pageInfo { hasNextPage endCursor } } }`;
    const first = await app.gql(query, { q: 'compiler' });
    expect(first.data!.searchPosts.totalCount).toBe(2);
    // Title matches weigh more than body matches.
    expect(titles(first, 'searchPosts')).toEqual(['Compilers for everyone']);
    const second = await app.gql(query, {
      q: 'compiler',
      after: first.data!.searchPosts.pageInfo.endCursor,
    });
    expect(titles(second, 'searchPosts')).toEqual(['Debugging moths']);
    expect(second.data!.searchPosts.pageInfo.hasNextPage).toBe(false);
    const otherQuery = await app.gql(query, {
      q: 'moth',
      after: first.data!.searchPosts.pageInfo.endCursor,
    });
    expect(otherQuery.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const empty = await app.gql(query, { q: '   ' });
    expect(empty.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('reads a post by slug, nodes by ids, users and tags with their posts', async () => {
    const bySlug = await app.gql(
      `query($slug: String) { post(slug: $slug) { title author { name } } }`,
      { slug: posts[2]!.slug },
    );
    expect(bySlug.data!.post).toEqual({ title: 'Debugging moths', author: { name: 'Grace' } });
    const hiddenSlug = await app.gql(`query($slug: String) { post(slug: $slug) { title } }`, {
      slug: posts[3]!.slug,
    });
    expect(hiddenSlug.data!.post).toBeNull();
    const both = await app.gql(`query { post(id: "x", slug: "y") { title } }`);
    expect(both.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const ids = [globalId('Post', posts[0]!.id), ada.globalId, globalId('Post', posts[3]!.id)];
    const nodes = await app.gql(
      `query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Post { title } ... on User { name } } }`,
      { ids },
    );
    expect(nodes.data!.nodes).toEqual([
      { id: ids[0], title: 'Compilers for everyone' },
      { id: ids[1], name: 'Ada' },
      null,
    ]);

    const users = await app.gql(
      `{ users(first: 10) { totalCount edges { node { name email postCount posts(first: 1) { totalCount edges { node { title } } } } } } }`,
    );
    const byName = Object.fromEntries(
      users.data!.users.edges.map((edge: { node: { name: string } }) => [
        edge.node.name,
        edge.node,
      ]),
    );
    expect(byName.Ada).toEqual({
      name: 'Ada',
      email: null,
      postCount: 2,
      posts: { totalCount: 2, edges: [{ node: { title: 'Analytical engines' } }] },
    });
    expect(byName.Grace.postCount).toBe(1);

    const tags = await app.gql(
      `{ tags { totalCount edges { node { name posts { totalCount edges { node { title } } } } } } }`,
    );
    expect(tags.data!.tags).toEqual({
      totalCount: 1,
      edges: [
        {
          node: {
            name: 'history',
            posts: {
              totalCount: 2,
              edges: [
                { node: { title: 'Debugging moths' } },
                { node: { title: 'Analytical engines' } },
              ],
            },
          },
        },
      ],
    });
  });

  it('shows the viewer their own email and role', async () => {
    const result = await app.gql('{ viewer { id name email role } }', {}, { token: ada.token });
    expect(result.data!.viewer).toEqual({
      id: ada.globalId,
      name: 'Ada',
      email: expect.stringContaining('@example.com'),
      role: 'AUTHOR',
    });
    expect((await app.gql('{ viewer { id } }')).data!.viewer).toBeNull();
    expect(localId(ada.globalId)).toBe(ada.id);
  });
});
