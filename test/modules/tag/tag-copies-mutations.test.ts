import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, type TestUser } from '../../helpers/factories.ts';

// Tag pages choose their walk by post_tags' copies of the post's status and author
// (`post_published`, `post_author_id`, migration 20261207000000). Every mutation that changes a
// post's status or links, done through the API, must leave each viewer's tag page equal to a
// brute force over posts itself: anonymous, the author, another author, an editor.

let app: TestApp;
let author: TestUser;
let stranger: TestUser;
let editor: TestUser;

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off', RATE_LIMIT_MUTATIONS: '1000' });
  author = await createUser(app.deps.db, 'AUTHOR', 'Ann');
  stranger = await createUser(app.deps.db, 'AUTHOR', 'Sid');
  editor = await createUser(app.deps.db, 'EDITOR', 'Eve');
});

afterAll(async () => {
  await app?.close();
});

const PAGE = `query ($tag: String!, $first: Int!, $after: String) {
  posts(first: $first, after: $after, filter: { tag: $tag }) {
    totalCount edges { node { title } } pageInfo { hasNextPage endCursor }
  }
}`;

async function tagPage(tag: string, token?: string): Promise<{ titles: string[]; total: number }> {
  const titles: string[] = [];
  let after: string | undefined;
  let total = -1;
  for (let guard = 0; guard < 20; guard += 1) {
    const result = await app.gql(PAGE, { tag, first: 2, after }, { token });
    expect(result.errors).toBeUndefined();
    const posts = result.data!.posts;
    total = posts.totalCount;
    titles.push(...posts.edges.map((edge: { node: { title: string } }) => edge.node.title));
    if (!posts.pageInfo.hasNextPage) break;
    after = posts.pageInfo.endCursor;
  }
  return { titles, total };
}

async function expected(tag: string, viewer: 'anonymous' | TestUser): Promise<string[]> {
  const visible =
    viewer === editor
      ? sql`true`
      : viewer === 'anonymous'
        ? sql`p.status = 'PUBLISHED'`
        : sql`(p.status = 'PUBLISHED' or p.author_id = ${viewer.id})`;
  const { rows } = await sql<{ title: string }>`
    select p.title from posts p
    where ${visible} and exists (select 1 from post_tags pt join tags t on t.id = pt.tag_id
      where pt.post_id = p.id and t.name = ${tag})
    order by p.created_at desc, p.id desc`.execute(app.deps.db);
  return rows.map((row) => row.title);
}

async function checkAll(step: string) {
  const { rows } = await sql<{ stale: string }>`
    select count(*) as stale from post_tags pt join posts p on p.id = pt.post_id
    where pt.post_published <> (p.status = 'PUBLISHED') or pt.post_author_id <> p.author_id
      or pt.post_created_at <> p.created_at`.execute(app.deps.db);
  expect(rows[0]!.stale, `${step}: stale copies`).toBe('0');
  for (const tag of ['alpha', 'beta']) {
    for (const viewer of ['anonymous', author, stranger, editor] as const) {
      const want = await expected(tag, viewer);
      const got = await tagPage(tag, viewer === 'anonymous' ? undefined : viewer.token);
      const label = `${step}: ${tag} for ${viewer === 'anonymous' ? viewer : viewer.id}`;
      expect(got.titles, label).toEqual(want);
      expect(got.total, label).toBe(want.length);
    }
  }
}

async function mutate(query: string, input: Record<string, unknown>, token: string) {
  const result = await app.gql(query, { input }, { token });
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data!;
}

const CREATE = 'mutation ($input: CreatePostInput!) { createPost(input: $input) { post { id } } }';
const UPDATE = 'mutation ($input: UpdatePostInput!) { updatePost(input: $input) { post { id } } }';
const TAGS = 'mutation ($input: SetPostTagsInput!) { setPostTags(input: $input) { post { id } } }';
const DELETE =
  'mutation ($input: DeletePostInput!) { deletePost(input: $input) { deletedPostId } }';

describe("tag pages follow every change of a post's status, links and existence", () => {
  it('create, tag, publish, archive, retag, delete: each step against the brute force', async () => {
    const ids: string[] = [];
    for (const [index, token] of [
      author.token,
      author.token,
      stranger.token,
      author.token,
    ].entries()) {
      const data = await mutate(
        CREATE,
        { title: `Copy ${index}`, body: 'text', status: 'DRAFT', tags: ['alpha'] },
        token,
      );
      ids.push(data.createPost.post.id);
    }
    await checkAll('created as drafts');
    await mutate(UPDATE, { id: ids[0], status: 'PUBLISHED' }, editor.token);
    await mutate(UPDATE, { id: ids[2], status: 'PUBLISHED' }, editor.token);
    await checkAll('two published');
    await mutate(TAGS, { postId: ids[1], tags: ['alpha', 'beta'] }, author.token);
    await mutate(TAGS, { postId: ids[2], tags: ['beta'] }, editor.token);
    await checkAll('retagged');
    await mutate(UPDATE, { id: ids[0], status: 'ARCHIVED' }, editor.token);
    await mutate(UPDATE, { id: ids[1], status: 'PUBLISHED' }, editor.token);
    await checkAll('archived one, published another');
    await mutate(TAGS, { postId: ids[3], tags: [] }, author.token);
    await mutate(TAGS, { postId: ids[3], tags: ['beta', 'alpha'] }, author.token);
    await checkAll('untagged and tagged again');
    await mutate(DELETE, { id: ids[1] }, editor.token);
    await checkAll('deleted a published one');
  });
});
