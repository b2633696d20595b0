import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphQLResponse, startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { redisUrl } from '../../helpers/services.ts';
import { warmViewer } from '../../helpers/viewer.ts';

// Two instances over one database and one Redis, resolver and response caches on (the
// defaults): a tag's visibility must follow its posts on both, whatever either has cached.
let instanceA: TestApp;
let instanceB: TestApp;
let author: TestUser;
let otherAuthor: TestUser;
let editor: TestUser;

/** The viewers the rule distinguishes; `token: undefined` is an anonymous reader. */
let viewers: { name: string; token: string | undefined }[];

const createPost = /* GraphQL */ `
  mutation($input: CreatePostInput!) { createPost(input: $input) { post { id tags { id name } } } }
`;
const updateStatus = /* GraphQL */ `
  mutation($id: ID!, $status: PostStatus!) { updatePost(input: { id: $id, status: $status }) { post { status } } }
`;
const tagList = /* GraphQL */ `
  query { tags(first: 100) { totalCount edges { node { id name } } } }
`;
const tagNode = /* GraphQL */ `
  query($id: ID!) { node(id: $id) { id ... on Tag { name } } }
`;
const tagNodes = /* GraphQL */ `
  query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Tag { name } } }
`;
const tagPosts = /* GraphQL */ `
  query($id: ID!) {
    node(id: $id) { ... on Tag { posts(first: 10) { totalCount edges { node { title } } } } }
  }
`;
const postsByTag = /* GraphQL */ `
  query($tag: String!) {
    posts(first: 10, filter: { tag: $tag }) { totalCount edges { node { title } } }
    tagPosts: tags(first: 100) { edges { node { name posts(filter: { tag: $tag }) { totalCount } } } }
  }
`;
const tagCloud = /* GraphQL */ `
  query { tagCloud(first: 100) { tag { name } postCount } }
`;

interface Created {
  postId: string;
  tagIds: Map<string, string>;
}

async function create(
  token: string,
  title: string,
  tags: string[],
  status?: 'PUBLISHED',
): Promise<Created> {
  const result = await instanceA.gql(
    createPost,
    { input: { title, body: 'x', tags, status } },
    {
      token,
    },
  );
  expect(result.errors).toBeUndefined();
  const post = result.data!.createPost.post;
  return {
    postId: post.id,
    tagIds: new Map(post.tags.map((tag: { id: string; name: string }) => [tag.name, tag.id])),
  };
}

async function tagNames(instance: TestApp, token: string | undefined): Promise<string[]> {
  const result = await instance.gql(tagList, {}, { token });
  expect(result.errors).toBeUndefined();
  const names = result.data!.tags.edges.map((edge: { node: { name: string } }) => edge.node.name);
  expect(result.data!.tags.totalCount).toBe(names.length);
  return names;
}

/** Every anonymous and other-author view of `tagId` / `name`, on both instances. */
async function expectHiddenFromOthers(tagId: string, name: string): Promise<void> {
  const unknownId = globalId('Tag', '987654321');
  for (const instance of [instanceA, instanceB]) {
    for (const token of [undefined, otherAuthor.token]) {
      expect(await tagNames(instance, token)).not.toContain(name);
      const hidden = await instance.gql(tagNode, { id: tagId }, { token });
      const unknown = await instance.gql(tagNode, { id: unknownId }, { token });
      expect(hidden).toEqual(unknown);
      expect(hidden.data!.node).toBeNull();
    }
  }
}

async function expectVisibleToAnonymous(tagId: string, name: string): Promise<void> {
  for (const instance of [instanceA, instanceB]) {
    expect(await tagNames(instance, undefined)).toContain(name);
    const result = await instance.gql(tagNode, { id: tagId });
    expect(result.data!.node).toEqual({ id: tagId, name });
  }
}

beforeAll(async () => {
  const env = { REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '10000' };
  instanceA = await startTestApp(env);
  instanceB = await startTestApp(env, instanceA);
  author = await createUser(instanceA.deps.db, 'AUTHOR', 'Ada');
  otherAuthor = await createUser(instanceA.deps.db, 'AUTHOR', 'Grace');
  editor = await createUser(instanceA.deps.db, 'EDITOR', 'Edith');
  viewers = [
    { name: 'anonymous', token: undefined },
    { name: 'another author', token: otherAuthor.token },
    { name: 'the draft author', token: author.token },
    { name: 'an editor', token: editor.token },
  ];
});

afterAll(async () => {
  await instanceB?.close();
  await instanceA?.close();
});

describe('a tag only on a draft', () => {
  let draft: Created;
  let published: Created;
  let hiddenId: string;
  let sharedId: string;
  let publicId: string;

  beforeAll(async () => {
    draft = await create(author.token, 'Secret draft', ['hidden-x', 'shared-z']);
    published = await create(editor.token, 'Public post', ['public-y', 'shared-z'], 'PUBLISHED');
    hiddenId = draft.tagIds.get('hidden-x')!;
    sharedId = draft.tagIds.get('shared-z')!;
    publicId = published.tagIds.get('public-y')!;
  });

  it('is listed, counted and found by id only for its author and editors', async () => {
    const expected: Record<string, string[]> = {
      anonymous: ['public-y', 'shared-z'],
      'another author': ['public-y', 'shared-z'],
      'the draft author': ['hidden-x', 'public-y', 'shared-z'],
      'an editor': ['hidden-x', 'public-y', 'shared-z'],
    };
    const unknownId = globalId('Tag', '987654321');
    for (const viewer of viewers) {
      for (const instance of [instanceA, instanceB]) {
        // totalCount is checked against the edges inside tagNames.
        expect(await tagNames(instance, viewer.token), viewer.name).toEqual(expected[viewer.name]);
        const sees = expected[viewer.name]!.includes('hidden-x');
        const node = await instance.gql(tagNode, { id: hiddenId }, { token: viewer.token });
        const unknown = await instance.gql(tagNode, { id: unknownId }, { token: viewer.token });
        if (sees) {
          expect(node.data!.node, viewer.name).toEqual({ id: hiddenId, name: 'hidden-x' });
        } else {
          // No oracle: a hidden tag answers exactly as an id that never existed.
          expect(node, viewer.name).toEqual(unknown);
          expect(node.data!.node).toBeNull();
        }
        const nodes = await instance.gql(
          tagNodes,
          { ids: [hiddenId, unknownId, publicId] },
          { token: viewer.token },
        );
        expect(nodes.errors).toBeUndefined();
        expect(nodes.data!.nodes, viewer.name).toEqual([
          sees ? { id: hiddenId, name: 'hidden-x' } : null,
          null,
          { id: publicId, name: 'public-y' },
        ]);
      }
    }
  });

  it('stays batched: the statement count does not grow with the tags', async () => {
    const query = /* GraphQL */ `
      query($ids: [ID!]!) {
        tags(first: 100) { totalCount edges { node { name posts(first: 2) { totalCount } } } }
        nodes(ids: $ids) { id }
      }
    `;
    for (const viewer of viewers) {
      if (viewer.token) await warmViewer(instanceA, viewer.token);
      const result = await instanceA.gql(
        query,
        { ids: [hiddenId, sharedId, publicId] },
        { token: viewer.token, debug: true },
      );
      expect(result.errors).toBeUndefined();
      // Tag page, tag count, one grouped count for every tag's posts (a bare totalCount runs
      // no page query), the nodes; the token costs none once its viewer is cached.
      expect(result.extensions?.sql, viewer.name).toEqual({ queries: 4 });
    }
  });

  it('counts only the posts each viewer may see', async () => {
    const expected: Record<string, string[]> = {
      anonymous: ['Public post'],
      'another author': ['Public post'],
      'the draft author': ['Public post', 'Secret draft'],
      'an editor': ['Public post', 'Secret draft'],
    };
    for (const viewer of viewers) {
      const result = await instanceA.gql(tagPosts, { id: sharedId }, { token: viewer.token });
      expect(result.errors).toBeUndefined();
      const posts = result.data!.node.posts;
      const titles = posts.edges.map((edge: { node: { title: string } }) => edge.node.title);
      expect(titles.sort(), viewer.name).toEqual(expected[viewer.name]);
      expect(posts.totalCount, viewer.name).toBe(titles.length);
    }
    // The tag cloud counts published posts only: the same public numbers for everyone.
    for (const viewer of viewers) {
      const result = await instanceB.gql(tagCloud, {}, { token: viewer.token });
      expect(result.errors).toBeUndefined();
      expect(
        [...result.data!.tagCloud].sort((a, b) => a.tag.name.localeCompare(b.tag.name)),
        viewer.name,
      ).toEqual([
        { tag: { name: 'public-y' }, postCount: 1 },
        { tag: { name: 'shared-z' }, postCount: 1 },
      ]);
    }
  });

  it('filter.tag on a hidden tag answers as an unknown tag', async () => {
    for (const viewer of viewers) {
      const hidden = await instanceA.gql(postsByTag, { tag: 'hidden-x' }, { token: viewer.token });
      const unknown = await instanceA.gql(
        postsByTag,
        { tag: 'never-used' },
        { token: viewer.token },
      );
      expect(hidden.errors).toBeUndefined();
      if (viewer.token === author.token || viewer.token === editor.token) {
        expect(hidden.data!.posts, viewer.name).toEqual({
          totalCount: 1,
          edges: [{ node: { title: 'Secret draft' } }],
        });
      } else {
        expect(hidden, viewer.name).toEqual(unknown);
        expect(hidden.data!.posts).toEqual({ totalCount: 0, edges: [] });
      }
    }
  });

  it('pages through visible tags only, with keyset cursors', async () => {
    // Hidden names sort between visible ones, so a page boundary falls next to each of them.
    const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
    await create(editor.token, 'Paged public', ['page-a', 'page-c', 'page-e'], 'PUBLISHED');
    await create(author.token, 'Paged draft', ['page-b', 'page-d']);
    const page = /* GraphQL */ `
      query($after: String) {
        tags(first: 1, after: $after) { totalCount edges { node { name } } pageInfo { hasNextPage endCursor } }
      }
    `;
    for (const viewer of viewers) {
      const seen: string[] = [];
      let after: string | null = null;
      let totalCount = -1;
      for (let guard = 0; guard < 20; guard++) {
        const result: GraphQLResponse = await instanceA.gql(
          page,
          { after },
          { token: viewer.token },
        );
        expect(result.errors).toBeUndefined();
        const tags: {
          totalCount: number;
          edges: { node: { name: string } }[];
          pageInfo: { hasNextPage: boolean; endCursor: string };
        } = result.data!.tags;
        totalCount = tags.totalCount;
        seen.push(...tags.edges.map((edge: { node: { name: string } }) => edge.node.name));
        if (!tags.pageInfo.hasNextPage) break;
        after = tags.pageInfo.endCursor;
      }
      const all = await tagNames(instanceA, viewer.token);
      expect(seen, viewer.name).toEqual(all);
      expect(totalCount).toBe(all.length);
      const sees = viewer.token === author.token || viewer.token === editor.token;
      expect(
        seen.filter((name) => names.includes(name)),
        viewer.name,
      ).toEqual(sees ? names : ['page-a', 'page-c', 'page-e']);
    }
  });
});

describe('a tag follows its post through publish, unpublish and delete', () => {
  it('appears to everyone on publish and disappears again, on both instances', async () => {
    const { postId, tagIds } = await create(author.token, 'Lifecycle', ['lifecycle-x']);
    const tagId = tagIds.get('lifecycle-x')!;
    // Warm both instances' caches with the hidden answer first.
    await expectHiddenFromOthers(tagId, 'lifecycle-x');

    const publish = await instanceB.gql(
      updateStatus,
      { id: postId, status: 'PUBLISHED' },
      { token: editor.token },
    );
    expect(publish.errors).toBeUndefined();
    await expectVisibleToAnonymous(tagId, 'lifecycle-x');
    const filtered = await instanceA.gql(postsByTag, { tag: 'lifecycle-x' });
    expect(filtered.data!.posts.totalCount).toBe(1);

    const unpublish = await instanceA.gql(
      updateStatus,
      { id: postId, status: 'DRAFT' },
      { token: editor.token },
    );
    expect(unpublish.errors).toBeUndefined();
    await expectHiddenFromOthers(tagId, 'lifecycle-x');
    // Still the author's.
    expect(await tagNames(instanceB, author.token)).toContain('lifecycle-x');

    await instanceB.gql(updateStatus, { id: postId, status: 'PUBLISHED' }, { token: editor.token });
    await expectVisibleToAnonymous(tagId, 'lifecycle-x');
    const deleted = await instanceA.gql(
      `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`,
      { id: postId },
      {
        token: author.token,
      },
    );
    expect(deleted.errors).toBeUndefined();
    await expectHiddenFromOthers(tagId, 'lifecycle-x');
    // A tag that labels no post at all labels nothing anyone may see, editors included.
    for (const instance of [instanceA, instanceB]) {
      for (const token of [author.token, editor.token]) {
        expect(await tagNames(instance, token)).not.toContain('lifecycle-x');
        expect((await instance.gql(tagNode, { id: tagId }, { token })).data!.node).toBeNull();
      }
    }
  });
});
