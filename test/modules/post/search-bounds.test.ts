import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEARCH_CANDIDATES } from '../../../src/modules/post/post.repository.ts';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

let app: TestApp;

/** Carries a plan out of a transaction that must roll back. */
class PlanSeen extends Error {}
let ada: TestUser;

const search = `query($q: String!, $first: Int, $after: String) {
  searchPosts(query: $q, first: $first, after: $after) {
    totalCount edges { node { title } } pageInfo { hasNextPage endCursor } } }`;

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();

beforeAll(async () => {
  // No cache: every request runs its statements, so their number is seen.
  app = await startTestApp({ CACHE: 'off' });
  ada = await createUser(app.deps.db, 'AUTHOR', 'Ada');
  // The oldest match is the best one (its title matches); SEARCH_CANDIDATES newer body matches
  // push it out of what search ranks. A newer title match and a draft match stay inside.
  await createPosts(app.deps.db, [
    { authorId: ada.id, title: 'Quokka field guide', body: 'quokka', createdAt: at(0) },
    ...Array.from({ length: SEARCH_CANDIDATES - 1 }, (_, index) => ({
      authorId: ada.id,
      title: `Island notes ${index}`,
      body: 'We saw a quokka near the ferry.',
      createdAt: at(1 + index),
    })),
    { authorId: ada.id, title: 'Quokka diaries', body: 'quokka', createdAt: at(5000) },
    {
      authorId: ada.id,
      title: 'Quokka draft',
      body: 'quokka',
      status: 'DRAFT',
      createdAt: at(6000),
    },
  ]);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

describe('searchPosts on a broad term', () => {
  it('ranks and counts only the newest SEARCH_CANDIDATES visible matches', async () => {
    const anonymous = await app.gql(search, { q: 'quokka', first: 2 });
    expect(anonymous.errors).toBeUndefined();
    expect(anonymous.data!.searchPosts.totalCount).toBe(SEARCH_CANDIDATES);
    const titles = anonymous.data!.searchPosts.edges.map(
      (edge: { node: { title: string } }) => edge.node.title,
    );
    expect(titles[0]).toBe('Quokka diaries');
    expect(titles).not.toContain('Quokka field guide');

    // The draft is a candidate for its author only, and takes the oldest match's place.
    const author = await app.gql(search, { q: 'quokka', first: 3 }, { token: ada.token });
    expect(author.data!.searchPosts.totalCount).toBe(SEARCH_CANDIDATES);
    const authorTitles = author.data!.searchPosts.edges.map(
      (edge: { node: { title: string } }) => edge.node.title,
    );
    expect(authorTitles.slice(0, 2).sort()).toEqual(['Quokka diaries', 'Quokka draft']);
  });

  it('pages through exactly the counted candidates', async () => {
    let after: string | null = null;
    let seen = 0;
    const titles = new Set<string>();
    for (;;) {
      const page: any = await app.gql(search, { q: 'quokka', first: 100, after });
      expect(page.errors).toBeUndefined();
      for (const edge of page.data.searchPosts.edges) titles.add(edge.node.title);
      seen += page.data.searchPosts.edges.length;
      if (!page.data.searchPosts.pageInfo.hasNextPage) break;
      after = page.data.searchPosts.pageInfo.endCursor;
    }
    expect(seen).toBe(SEARCH_CANDIDATES);
    expect(titles.size).toBe(SEARCH_CANDIDATES);
    expect(titles.has('Quokka field guide')).toBe(false);
  });

  it('finds the candidates once for page and count, and counts alone without a page', async () => {
    const both = await app.gql(search, { q: 'quokka', first: 2 }, { debug: true });
    expect(both.data!.searchPosts.totalCount).toBe(SEARCH_CANDIDATES);
    expect(both.extensions!.sql.queries).toBe(1);
    const countOnly = await app.gql(
      `query($q: String!) { searchPosts(query: $q) { totalCount } }`,
      { q: 'quokka' },
      { debug: true },
    );
    expect(countOnly.data!.searchPosts.totalCount).toBe(SEARCH_CANDIDATES);
    expect(countOnly.extensions!.sql.queries).toBe(1);
    // Past the last page no row carries the count: it is counted on its own.
    const rare = await app.gql(search, { q: 'diaries', first: 1 });
    const past = await app.gql(
      search,
      { q: 'diaries', first: 1, after: rare.data!.searchPosts.pageInfo.endCursor },
      { debug: true },
    );
    expect(past.data!.searchPosts).toMatchObject({ totalCount: 1, edges: [] });
    expect(past.extensions!.sql.queries).toBe(2);
  });
});

describe('posts(filter: { search }) on a broad term', () => {
  const list = `query($q: String!, $first: Int, $after: String) {
    posts(filter: { search: $q }, first: $first, after: $after) {
      totalCount edges { node { title } } pageInfo { hasNextPage endCursor } } }`;

  it('counts at most SEARCH_CANDIDATES matches, and pages through all of them', async () => {
    // SEARCH_CANDIDATES + 1 published posts match: one more than the count may say.
    const first = await app.gql(list, { q: 'quokka', first: 1 });
    expect(first.errors).toBeUndefined();
    expect(first.data!.posts.totalCount).toBe(SEARCH_CANDIDATES);
    const visible = await app.deps.db
      .selectFrom('posts')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', '=', 'PUBLISHED')
      .where(sql<boolean>`search @@ websearch_to_tsquery('english', 'quokka')`)
      .executeTakeFirstOrThrow();
    expect(Number(visible.n)).toBe(SEARCH_CANDIDATES + 1);
    // The pages are not bounded by the count: the oldest match is the last row.
    const last = await app.gql(
      `query($q: String!) { posts(filter: { search: $q }, last: 1) { edges { node { title } } } }`,
      { q: 'quokka' },
    );
    expect(last.data!.posts.edges).toEqual([{ node: { title: 'Quokka field guide' } }]);
    // A narrow term is counted exactly.
    const narrow = await app.gql(list, { q: 'diaries', first: 1 });
    expect(narrow.data!.posts.totalCount).toBe(1);
  });
});

describe('searchPosts as a post is published and archived', () => {
  // Anonymous search reads posts_published_search_idx, which holds published posts only: a post
  // enters it when published and leaves it when archived; its author and editors find it always.
  it('finds a post for anonymous readers only while it is published', async () => {
    const editor = await createUser(app.deps.db, 'EDITOR', 'Edith');
    const [draft] = await createPosts(app.deps.db, [
      { authorId: ada.id, title: 'Wombat burrows', body: 'wombat', status: 'DRAFT' },
    ]);
    const update = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { status } } }`;
    const setStatus = async (status: string) => {
      const result = await app.gql(
        update,
        { input: { id: globalId('Post', draft!.id), status } },
        { token: editor.token },
      );
      expect(result.errors).toBeUndefined();
    };
    const found = async (token?: string) => {
      const result = await app.gql(search, { q: 'wombat', first: 5 }, token ? { token } : {});
      expect(result.errors).toBeUndefined();
      return result.data!.searchPosts;
    };
    const wombat = { totalCount: 1, edges: [{ node: { title: 'Wombat burrows' } }] };

    expect(await found()).toMatchObject({ totalCount: 0, edges: [] });
    expect(await found(ada.token)).toMatchObject(wombat);
    expect(await found(editor.token)).toMatchObject(wombat);
    await setStatus('PUBLISHED');
    expect(await found()).toMatchObject(wombat);
    await setStatus('ARCHIVED');
    expect(await found()).toMatchObject({ totalCount: 0, edges: [] });
    expect(await found(ada.token)).toMatchObject(wombat);
    expect(await found(editor.token)).toMatchObject(wombat);
  });

  it('answers a term among published posts from their own GIN index', async () => {
    // At a few hundred posts a btree of the published posts is as cheap as any; without those
    // (dropped in a transaction rolled back) and with bitmap scans only, the plan shows that the
    // partial index covers an anonymous search's condition by itself, where the all-posts GIN
    // index needs a filter on status.
    await sql`analyze posts`.execute(app.deps.db);
    const plan = await app.deps.db
      .transaction()
      .execute(async (trx) => {
        await sql`set local enable_seqscan = off`.execute(trx);
        await sql`set local enable_indexscan = off`.execute(trx);
        await sql`drop index posts_published_idx, posts_published_created_idx, posts_status_created_idx,
          posts_author_published_created_idx, posts_published_updated_idx`.execute(trx);
        const { rows } = await sql<{ 'QUERY PLAN': string }>`explain
          select id from posts
          where status = 'PUBLISHED' and search @@ websearch_to_tsquery('english', 'diaries')
          order by created_at desc, id desc limit ${SEARCH_CANDIDATES}`.execute(trx);
        throw new PlanSeen(rows.map((row) => row['QUERY PLAN']).join('\n'));
      })
      .catch((error: unknown) =>
        error instanceof PlanSeen ? error.message : Promise.reject(error),
      );
    expect(plan).toContain('Bitmap Index Scan on posts_published_search_idx');
    expect(plan).not.toContain('Filter');
  });
});
