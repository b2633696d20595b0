import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { warmViewer } from '../../helpers/viewer.ts';

let app: TestApp;
let author: TestUser;
let otherAuthor: TestUser;
let editor: TestUser;
let reader: TestUser;

const createPost = /* GraphQL */ `
  mutation Create($input: CreatePostInput!) {
    createPost(input: $input) { post { id title slug status author { id } tags { name } } }
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
  app = await startTestApp({ RATE_LIMIT_MUTATIONS: '10000' });
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
    expect(result.data!.createPost.post).toMatchObject({
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
    expect(allowed.data!.createPost.post.status).toBe('PUBLISHED');
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
    const update = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title updatedAt } } }`;
    const ok = await app.gql(update, { input: { id, title: 'Edited' } }, { token: author.token });
    expect(ok.data!.updatePost.post.title).toBe('Edited');
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
      `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }`,
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
    const setTags = `mutation($id: ID!, $tags: [String!]!) { setPostTags(input: { postId: $id, tags: $tags }) { post { tags { name } } } }`;
    await app.gql(setTags, { id, tags: ['a', 'b'] }, { token: author.token });
    const result = await app.gql(setTags, { id, tags: ['b', 'c'] }, { token: author.token });
    expect(result.data!.setPostTags.post.tags).toEqual([{ name: 'b' }, { name: 'c' }]);

    const deleted = await app.gql(
      `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`,
      { id },
      { token: author.token },
    );
    expect(deleted.data!.deletePost.deletedPostId).toBe(id);
    const again = await app.gql(
      `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`,
      { id },
      { token: author.token },
    );
    expect(again.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  const update = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { slug } } }`;
  const setTags = `mutation($id: ID!, $tags: [String!]!) { setPostTags(input: { postId: $id, tags: $tags }) { post { id updatedAt tags { name } } } }`;

  async function slugOf(id: string): Promise<string | undefined> {
    const row = await app.deps.db
      .selectFrom('posts')
      .select('slug')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.slug;
  }

  async function tagNamesOf(postId: string): Promise<string[]> {
    const rows = await app.deps.db
      .selectFrom('post_tags')
      .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
      .select('tags.name')
      .where('post_tags.post_id', '=', postId)
      .orderBy('tags.name')
      .execute();
    return rows.map((row) => row.name);
  }

  it('refuses a malformed slug in updatePost with BAD_USER_INPUT, changing nothing', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    for (const slug of ['Upper Case', 'double--dash', '-leading', 'x'.repeat(121)]) {
      const result = await app.gql(
        update,
        { input: { id: globalId('Post', post!.id), slug } },
        { token: author.token },
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.message).toContain('input.slug');
    }
    expect(await slugOf(post!.id)).toBe(post!.slug);
  });

  it('answers CONFLICT when updatePost takes another post’s slug, changing nothing', async () => {
    const [post, other] = await createPosts(app.deps.db, [
      { authorId: author.id },
      { authorId: author.id },
    ]);
    const result = await app.gql(
      update,
      { input: { id: globalId('Post', post!.id), slug: other!.slug } },
      { token: author.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(result.errors?.[0]?.message).toBe('A post with this slug already exists');
    expect(await slugOf(post!.id)).toBe(post!.slug);
  });

  it('returns the post as it is after setPostTags, with updatedAt moved on', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const before = await app.deps.db
      .selectFrom('posts')
      .select('updated_at')
      .where('id', '=', post!.id)
      .executeTakeFirstOrThrow();
    const result = await app.gql(
      setTags,
      { id: globalId('Post', post!.id), tags: ['Zeta', 'alpha'] },
      { token: author.token },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.setPostTags.post.tags).toEqual([{ name: 'alpha' }, { name: 'zeta' }]);
    expect(new Date(result.data!.setPostTags.post.updatedAt).getTime()).toBeGreaterThan(
      new Date(before.updated_at).getTime(),
    );
    const cleared = await app.gql(
      setTags,
      { id: globalId('Post', post!.id), tags: [] },
      { token: author.token },
    );
    expect(cleared.data!.setPostTags.post.tags).toEqual([]);
    expect(await tagNamesOf(post!.id)).toEqual([]);
  });

  it('refuses a bad tag name or too many tags in setPostTags, keeping the old tags', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const id = globalId('Post', post!.id);
    await app.gql(setTags, { id, tags: ['kept'] }, { token: author.token });
    const tagsBefore = await app.deps.db.selectFrom('tags').select('name').execute();

    const badName = await app.gql(
      setTags,
      { id, tags: ['fine', 'not fine!'] },
      { token: author.token },
    );
    expect(badName.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(badName.errors?.[0]?.message).toContain('tags.1');

    const tooMany = await app.gql(
      setTags,
      { id, tags: Array.from({ length: 21 }, (_, index) => `many-${index}`) },
      { token: author.token },
    );
    expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const twenty = Array.from(
      { length: 20 },
      (_, index) => `max-${String(index).padStart(2, '0')}`,
    );
    const atLimit = await app.gql(setTags, { id, tags: twenty }, { token: author.token });
    expect(atLimit.errors).toBeUndefined();
    expect(await tagNamesOf(post!.id)).toEqual(twenty);
    await app.gql(setTags, { id, tags: ['kept'] }, { token: author.token });

    expect(await tagNamesOf(post!.id)).toEqual(['kept']);
    const tagsAfter = await app.deps.db.selectFrom('tags').select('name').execute();
    expect(tagsAfter.length).toBe(tagsBefore.length + twenty.length);
    expect(tagsAfter.map((tag) => tag.name)).not.toContain('fine');
  });

  it('answers NOT_FOUND for setPostTags on an unknown post, creating no tag', async () => {
    const result = await app.gql(
      setTags,
      { id: globalId('Post', '987654321'), tags: ['orphan-tag'] },
      { token: author.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const orphan = await app.deps.db
      .selectFrom('tags')
      .select('id')
      .where('name', '=', 'orphan-tag')
      .executeTakeFirst();
    expect(orphan).toBeUndefined();
  });

  it('refuses deletePost by another author with FORBIDDEN, keeping the row', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id }]);
    const result = await app.gql(
      `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`,
      { id: globalId('Post', post!.id) },
      { token: otherAuthor.token },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(await slugOf(post!.id)).toBe(post!.slug);
  });

  it('refuses an ID of the wrong type or a malformed ID with BAD_USER_INPUT', async () => {
    for (const id of [globalId('User', author.id), 'bm9wZQ', '%%%']) {
      const result = await app.gql(
        `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`,
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
    const add = `mutation($id: ID!, $body: String!) { addComment(input: { postId: $id, body: $body }) { comment { body author { name } post { id } } } }`;
    const result = await app.gql(add, { id, body: 'Nice post' }, { token: reader.token });
    expect(result.data!.addComment.comment).toEqual({
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
    const add = `mutation($id: ID!, $body: String!) { addComment(input: { postId: $id, body: $body }) { comment { body } } }`;
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
  const importPosts = `mutation($input: [CreatePostInput!]!) { importPosts(input: { posts: $input }) { importedCount posts { slug tags { name } } } }`;
  const batch = (size: number) =>
    Array.from({ length: size }, (_, index) => ({
      title: `Imported ${index}`,
      body: `Body ${index}`,
      slug: `imported-${index}`,
      tags: [`bulk-${index % 10}`],
    }));

  it('imports 1,000 posts with tags in one transaction', async () => {
    // The viewer cache warm, so the token costs no statement (see viewer-cache.test.ts).
    await warmViewer(app, author.token);
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
    // Posts insert, tags upsert, post_tags insert, and Post.tags loading them back.
    expect(result.extensions?.sql.queries).toBe(4);
  });

  it('links each imported post to exactly its own tags', async () => {
    const input = Array.from({ length: 300 }, (_, index) => ({
      title: `Own tags ${index}`,
      body: 'x',
      slug: `own-tags-${index}`,
      // Every post gets a tag no other post has, plus one it shares with a third of the batch.
      tags: [`own-${index}`, `shared-${index % 3}`],
    }));
    const result = await app.gql(importPosts, { input }, { token: author.token });
    expect(result.errors).toBeUndefined();
    expect(result.data!.importPosts.posts).toEqual(
      input.map((post) => ({
        slug: post.slug,
        tags: [...post.tags].sort().map((name) => ({ name })),
      })),
    );
    const links = await app.deps.db
      .selectFrom('post_tags')
      .innerJoin('posts', 'posts.id', 'post_tags.post_id')
      .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
      .select(['posts.slug', 'tags.name'])
      .where('posts.slug', 'like', 'own-tags-%')
      .execute();
    const stored = new Map<string, string[]>();
    for (const link of links) stored.set(link.slug, [...(stored.get(link.slug) ?? []), link.name]);
    expect(stored.size).toBe(input.length);
    for (const post of input) expect(stored.get(post.slug)?.sort()).toEqual([...post.tags].sort());
  });

  it('refuses duplicate slugs within one batch with BAD_USER_INPUT, writing nothing', async () => {
    const before = await countRows('posts');
    const tagsBefore = await countRows('tags');
    const input = [
      { title: 'First', body: 'x', slug: 'dup-in-batch', tags: ['dup-batch-tag'] },
      { title: 'Middle', body: 'x', slug: 'unique-in-batch' },
      { title: 'Dup In Batch', body: 'x' },
    ];
    const result = await app.gql(importPosts, { input }, { token: author.token });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toContain('input.posts.2.slug');
    expect(result.errors?.[0]?.message).toContain('input.posts.0');
    expect(await countRows('posts')).toBe(before);
    expect(await countRows('tags')).toBe(tagsBefore);
  });

  it('refuses more than MAX_IMPORT_POSTS posts with BAD_USER_INPUT, writing nothing', async () => {
    const capped = await startTestApp({ MAX_IMPORT_POSTS: '3' }, app);
    try {
      const before = await countRows('posts');
      const input = batch(4).map((post) => ({ ...post, slug: `capped-${post.slug}` }));
      const over = await capped.gql(importPosts, { input }, { token: author.token });
      expect(over.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(over.errors?.[0]?.message).toBe('At most 3 posts per import');
      expect(await countRows('posts')).toBe(before);
      const atCap = await capped.gql(
        importPosts,
        { input: input.slice(0, 3) },
        { token: author.token },
      );
      expect(atCap.data!.importPosts.importedCount).toBe(3);
    } finally {
      await capped.close();
    }
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
