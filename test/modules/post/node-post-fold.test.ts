import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { compareFolded } from '../../helpers/fold.ts';

/**
 * `node(id:)` of a Post takes `post(id:)`'s path (src/modules/post/post.schema.ts): the comment
 * page its selection asks for comes in the post's own statement, and the same post read through
 * both fields, aliases or fragments on Node and Post is one statement. Answers must be those of
 * the unfolded path (QUERY_FOLDING=off) for every viewer and cache layer, and a draft stays
 * hidden from everyone but its author and staff through either field.
 */
let folded: TestApp;
let unfolded: TestApp;
let cached: TestApp;
let writer: TestUser;
let reader: TestUser;
let ids: { post: string; other: string; draft: string };

beforeAll(async () => {
  folded = await startTestApp({ CACHE: 'off' });
  unfolded = await startTestApp({ CACHE: 'off', QUERY_FOLDING: 'off' }, folded);
  cached = await startTestApp({ RESPONSE_CACHE: 'off' }, folded);
  const { db } = folded.deps;
  writer = await createUser(db, 'AUTHOR', 'Node Writer');
  reader = await createUser(db, 'VIEWER', 'Node Reader');
  const [post, other, draft] = await createPosts(db, [
    { authorId: writer.id, title: 'Read as a node' },
    { authorId: writer.id, title: 'Another post' },
    { authorId: writer.id, title: 'Draft read as a node', status: 'DRAFT' },
  ]);
  ids = {
    post: globalId('Post', post!.id),
    other: globalId('Post', other!.id),
    draft: globalId('Post', draft!.id),
  };
  await db
    .insertInto('comments')
    .values([
      ...Array.from({ length: 6 }, (_, index) => ({
        post_id: post!.id,
        author_id: index % 2 ? reader.id : writer.id,
        body: `Comment ${index}`,
      })),
      { post_id: other!.id, author_id: reader.id, body: 'On another' },
      { post_id: draft!.id, author_id: writer.id, body: 'Secret comment on a draft' },
    ])
    .execute();
});

afterAll(async () => {
  await cached?.close();
  await unfolded?.close();
  await folded?.close();
});

const compare = (query: string, variables: Record<string, unknown>, token?: string) =>
  compareFolded({ unfolded, folded, cached: [cached, cached] }, query, variables, token);

const page = 'edges { node { id body author { name } } } pageInfo { hasNextPage endCursor }';

describe('node(id:) of a Post', () => {
  it('folds its comment page into the post statement, as post(id:) does', async () => {
    const query = `query($id: ID!) { node(id: $id) { id ... on Post { title
      comments(first: 4) { ${page} } } } }`;
    const {
      result,
      folded: statements,
      unfolded: before,
    } = await compare(query, {
      id: ids.post,
    });
    expect(result.data?.node.title).toBe('Read as a node');
    expect(result.data?.node.comments.edges).toHaveLength(4);
    expect([statements, before]).toEqual([1, 2]);
  });

  it('reads a post asked through post(id:) and node(id:), aliases and fragments in one statement', async () => {
    const query = `query($id: ID!, $other: ID!) {
      post(id: $id) { ...Thread }
      a: node(id: $id) { ...Thread }
      b: node(id: $id) { ... on Node { id ... on Post { title comments(first: 2) { ${page} } } } }
      c: node(id: $other) { ...Thread }
    }
    fragment Thread on Post { id title comments(first: 2) { ${page} } }`;
    const {
      result,
      folded: statements,
      unfolded: before,
    } = await compare(query, {
      id: ids.post,
      other: ids.other,
    });
    expect(result.data?.a).toEqual(result.data?.post);
    expect(result.data?.b.comments).toEqual(result.data?.post.comments);
    expect(result.data?.c.title).toBe('Another post');
    expect([statements, before]).toEqual([1, 2]);
  });

  it('hides a draft from anonymous readers and other members through either field, shows it to its author', async () => {
    const query = `query($id: ID!) {
      post(id: $id) { title comments(first: 5) { ${page} } }
      node(id: $id) { id ... on Post { title comments(first: 5) { ${page} totalCount } } }
      bare: node(id: $id) { id }
    }`;
    for (const token of [undefined, reader.token]) {
      const { result } = await compare(query, { id: ids.draft }, token);
      expect(result.errors).toBeUndefined();
      expect(result.data).toEqual({ post: null, node: null, bare: null });
    }
    const { result } = await compare(query, { id: ids.draft }, writer.token);
    expect(result.data?.node.title).toBe('Draft read as a node');
    expect(result.data?.node.comments.edges[0].node.body).toBe('Secret comment on a draft');
    expect(result.data?.post.comments).toEqual({
      edges: result.data?.node.comments.edges,
      pageInfo: result.data?.node.comments.pageInfo,
    });
  });
});
