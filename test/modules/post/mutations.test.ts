import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

let app: TestApp;
let author: TestUser;
let otherAuthor: TestUser;
let editor: TestUser;
let reader: TestUser;

const createPost = /* GraphQL */ `
  mutation Create($input: CreatePostInput!) {
    createPost(input: $input) { id title slug status author { id } tags { name } }
  }
`;

async function countRows(table: 'posts' | 'tags' | 'post_tags' | 'comments'): Promise<number> {
  const { count } = await app.deps.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(count);
}

beforeAll(async () => {
  app = await startTestApp();
  author = await createUser(app.deps.db, 'AUTHOR', 'Ada');
  otherAuthor = await createUser(app.deps.db, 'AUTHOR', 'Grace');
  editor = await createUser(app.deps.db, 'EDITOR', 'Edith');
  reader = await createUser(app.deps.db, 'VIEWER', 'Rita');
});

afterAll(() => app?.close());

describe('createPost', () => {
  it('creates a draft with a derived slug and tags', async () => {
    const result = await app.gql(
      createPost,
      {
        input: {
          title: 'Hello, Wörld!',
          body: 'Some **markdown**.',
          tags: ['GraphQL', 'graphql', 'news'],
        },
      },
      { token: author.token },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.createPost).toMatchObject({
      title: 'Hello, Wörld!',
      slug: 'hello-world',
      status: 'DRAFT',
      author: { id: author.globalId },
      tags: [{ name: 'graphql' }, { name: 'news' }],
    });
  });

  it('answers UNAUTHENTICATED without a token and writes nothing', async () => {
    const before = await countRows('posts');
    const result = await app.gql(createPost, { input: { title: 'Anon', body: 'x' } });
    expect(result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await countRows('posts')).toBe(before);
  });

  it('answers UNAUTHENTICATED for an unknown token', async () => {
    const result = await app.gql('{ viewer { id } }', {}, { token: 'qr_nope' });
    expect(result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it.each([
    [{ title: '', body: 'x' }, 'input.title'],
    [{ title: 'x'.repeat(201), body: 'x' }, 'input.title'],
    [{ title: 'Fine', body: 'x', slug: 'Not A Slug' }, 'input.slug'],
    [{ title: 'Fine', body: 'x', tags: ['ok', 'bad tag!'] }, 'input.tags.1'],
    [{ title: '!!!', body: 'x' }, 'input.slug'],
  ])('rejects %j with BAD_USER_INPUT naming %s', async (input, path) => {
    const before = await countRows('posts');
    const result = await app.gql(createPost, { input }, { token: author.token });
    const error = result.errors?.[0];
    expect(error?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(error?.message).toContain(path);
    expect(await countRows('posts')).toBe(before);
  });

  it('answers CONFLICT for a taken slug', async () => {
    await app.gql(
      createPost,
      { input: { title: 'Taken', body: 'x', slug: 'taken' } },
      { token: author.token },
    );
    const result = await app.gql(
      createPost,
      { input: { title: 'Again', body: 'x', slug: 'taken' } },
      { token: author.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(result.errors?.[0]?.message).toBe('A post with this slug already exists');
  });

  it('lets only editors publish', async () => {
    const denied = await app.gql(
      createPost,
      { input: { title: 'Live', body: 'x', status: 'PUBLISHED' } },
      { token: author.token },
    );
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const allowed = await app.gql(
      createPost,
      { input: { title: 'Live now', body: 'x', status: 'PUBLISHED' } },
      { token: editor.token },
    );
    expect(allowed.data!.createPost.status).toBe('PUBLISHED');
  });

  it('refuses readers (VIEWER role) with FORBIDDEN', async () => {
    const result = await app.gql(
      createPost,
      { input: { title: 'R', body: 'x' } },
      { token: reader.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('updatePost, deletePost, setPostTags', () => {
  it('updates own post and refuses another author with FORBIDDEN, changing nothing', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id, title: 'Original' }]);
    const id = globalId('Post', post!.id);
    const update = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { title updatedAt } }`;
    const ok = await app.gql(update, { input: { id, title: 'Edited' } }, { token: author.token });
    expect(ok.data!.updatePost.title).toBe('Edited');
    const denied = await app.gql(
      update,
      { input: { id, title: 'Hijacked' } },
      { token: otherAuthor.token },
    );
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const row = await app.deps.db
      .selectFrom('posts')
      .select('title')
      .where('id', '=', post!.id)
      .executeTakeFirst();
    expect(row?.title).toBe('Edited');
  });

  it('hides another author’s draft as NOT_FOUND', async () => {
    const [draft] = await createPosts(app.deps.db, [{ authorId: author.id, status: 'DRAFT' }]);
    const id = globalId('Post', draft!.id);
    const result = await app.gql(
      `mutation($input: UpdatePostInput!) { updatePost(input: $input) { title } }`,
      { input: { id, title: 'x' } },
      { token: otherAuthor.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const read = await app.gql(`query($id: ID!) { post(id: $id) { title } node(id: $id) { id } }`, {
      id,
    });
    expect(read.data).toEqual({ post: null, node: null });
  });

  it('replaces tags and deletes a post', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const id = globalId('Post', post!.id);
    const setTags = `mutation($id: ID!, $tags: [String!]!) { setPostTags(postId: $id, tags: $tags) { tags { name } } }`;
    await app.gql(setTags, { id, tags: ['a', 'b'] }, { token: author.token });
    const result = await app.gql(setTags, { id, tags: ['b', 'c'] }, { token: author.token });
    expect(result.data!.setPostTags.tags).toEqual([{ name: 'b' }, { name: 'c' }]);

    const deleted = await app.gql(
      `mutation($id: ID!) { deletePost(id: $id) }`,
      { id },
      { token: author.token },
    );
    expect(deleted.data!.deletePost).toBe(id);
    const again = await app.gql(
      `mutation($id: ID!) { deletePost(id: $id) }`,
      { id },
      { token: author.token },
    );
    expect(again.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('refuses an ID of the wrong type or a malformed ID with BAD_USER_INPUT', async () => {
    for (const id of [globalId('User', author.id), 'bm9wZQ', '%%%']) {
      const result = await app.gql(
        `mutation($id: ID!) { deletePost(id: $id) }`,
        { id },
        { token: author.token },
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('addComment', () => {
  it('adds a comment visible in Post.comments with totalCount', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const id = globalId('Post', post!.id);
    const add = `mutation($id: ID!, $body: String!) { addComment(postId: $id, body: $body) { body author { name } post { id } } }`;
    const result = await app.gql(add, { id, body: 'Nice post' }, { token: reader.token });
    expect(result.data!.addComment).toEqual({
      body: 'Nice post',
      author: { name: 'Rita' },
      post: { id },
    });
    await app.gql(add, { id, body: 'Second' }, { token: author.token });
    const read = await app.gql(
      `query($id: ID!) { post(id: $id) { comments(first: 1) { totalCount edges { node { body } } pageInfo { hasNextPage } } } }`,
      { id },
    );
    expect(read.data!.post.comments).toEqual({
      totalCount: 2,
      edges: [{ node: { body: 'Second' } }],
      pageInfo: { hasNextPage: true },
    });
  });

  it('rejects an empty comment and a missing post', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const add = `mutation($id: ID!, $body: String!) { addComment(postId: $id, body: $body) { body } }`;
    const empty = await app.gql(
      add,
      { id: globalId('Post', post!.id), body: '   ' },
      { token: reader.token },
    );
    expect(empty.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const missing = await app.gql(
      add,
      { id: globalId('Post', '999999'), body: 'hi' },
      { token: reader.token },
    );
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});

describe('importPosts', () => {
  const importPosts = `mutation($input: [CreatePostInput!]!) { importPosts(input: $input) { importedCount posts { slug tags { name } } } }`;
  const batch = (size: number) =>
    Array.from({ length: size }, (_, index) => ({
      title: `Imported ${index}`,
      body: `Body ${index}`,
      slug: `imported-${index}`,
      tags: [`bulk-${index % 10}`],
    }));

  it('imports 1,000 posts with tags in one transaction', async () => {
    const result = await app.gql(
      importPosts,
      { input: batch(1000) },
      { token: author.token, debug: true },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.importPosts.importedCount).toBe(1000);
    expect(result.data!.importPosts.posts[999]).toEqual({
      slug: 'imported-999',
      tags: [{ name: 'bulk-9' }],
    });
    // posts insert, tags upsert, post_tags insert (+ auth lookup + loading the tags back)
    expect(result.extensions?.sql.queries).toBeLessThanOrEqual(5);
  });

  it('rejects the whole batch when one row in the middle is bad, leaving zero rows', async () => {
    const before = {
      posts: await countRows('posts'),
      tags: await countRows('tags'),
      links: await countRows('post_tags'),
    };
    const input = batch(1000).map((post) => ({
      ...post,
      slug: `again-${post.slug}`,
      tags: ['fresh-tag'],
    }));
    input[500] = { ...input[500]!, title: '' };
    const invalid = await app.gql(importPosts, { input }, { token: author.token });
    expect(invalid.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(invalid.errors?.[0]?.message).toContain('500.title');

    // A row that passes validation but violates a constraint mid-statement: the slug is taken.
    input[500] = { ...input[500]!, title: 'ok', slug: 'imported-3' };
    const conflict = await app.gql(importPosts, { input }, { token: author.token });
    expect(conflict.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect({
      posts: await countRows('posts'),
      tags: await countRows('tags'),
      links: await countRows('post_tags'),
    }).toEqual(before);
  });
});
