import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { variantsCompiled } from '../../src/db/compiled-query.ts';
import { countingDb, type SqlStats } from '../../src/db/database.ts';
import { postsByIds } from '../../src/modules/post/post.repository.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

/**
 * Hot reads are built and compiled once per shape (src/db/compiled-query.ts) and run with only
 * their parameters bound: a batch of any size must reuse one text and answer its own rows, and
 * the variants (who asks, filters, paging) must never serve one another's rows.
 */
let app: TestApp;
let admin: TestUser;
let author: TestUser;
let editor: TestUser;
/** Post ids, newest first: every third one a draft of `author`. */
let postIds: string[];
let titles: string[];

const POSTS = 9;

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  admin = await createUser(db, 'ADMIN', 'Admin');
  author = await createUser(db, 'AUTHOR', 'Author');
  editor = await createUser(db, 'EDITOR', 'Editor');
  const other = await createUser(db, 'AUTHOR', 'Other');
  titles = Array.from({ length: POSTS }, (_, index) => `Compiled ${index}`);
  const posts = await createPosts(
    db,
    titles.map((title, index) => ({
      authorId: index % 2 === 0 ? author.id : other.id,
      title,
      status: index % 3 === 2 ? 'DRAFT' : 'PUBLISHED',
      createdAt: new Date(Date.UTC(2026, 0, 1) - index * 60_000).toISOString(),
    })),
  );
  postIds = posts.map((post) => post.id);
});

afterAll(() => app?.close());

const published = (index: number) => index % 3 !== 2;
const byAuthor = (index: number) => index % 2 === 0;

async function titlesOf(query: string, token?: string): Promise<string[]> {
  const result = await app.gql<{ posts: { edges: { node: { title: string } }[] } }>(
    query,
    {},
    { token },
  );
  expect(result.errors).toBeUndefined();
  return result.data!.posts.edges.map((edge) => edge.node.title);
}

describe('compiled queries', () => {
  it('one statement text for one id and one for every larger batch, each answering its own rows', async () => {
    const texts = new Map<number, string>();
    for (const size of [1, 3, 7, 1, 2]) {
      const chosen = postIds.slice(POSTS - size);
      const aliases = chosen
        .map((id, n) => `p${n}: post(id: "${globalId('Post', id)}") { title }`)
        .join(' ');
      const result = await app.gql(`{ ${aliases} }`, {}, { token: admin.token, debug: true });
      expect(result.errors).toBeUndefined();
      expect(chosen.map((_, n) => result.data![`p${n}`].title)).toEqual(titles.slice(POSTS - size));
      // The others resolve the bearer token.
      const reads = (result.extensions!.sql.statements as { sql: string }[]).filter((statement) =>
        statement.sql.startsWith('select "posts"."id"'),
      );
      expect(reads).toHaveLength(1);
      texts.set(size, reads[0]!.sql);
    }
    // One id keeps a generic plan with `($1)[1]`; `any($1)` would be planned on every execution.
    expect(texts.get(1)).toMatch(/= \(\$1::bigint\[\]\)\[1\]/);
    expect(texts.get(2)).toMatch(/= any\(\$1::bigint\[\]\)/);
    expect(new Set([texts.get(2), texts.get(3), texts.get(7)]).size).toBe(1);
  });

  it('serves each viewer its own posts, whichever variant was compiled first', async () => {
    const list = '{ posts(first: 20) { edges { node { title } } } }';
    const expected = {
      anonymous: titles.filter((_, index) => published(index)),
      author: titles.filter((_, index) => published(index) || byAuthor(index)),
      editor: titles,
    };
    // Twice over, in an order that puts each variant after another one.
    for (let round = 0; round < 2; round++) {
      expect(await titlesOf(list, author.token)).toEqual(expected.author);
      expect(await titlesOf(list)).toEqual(expected.anonymous);
      expect(await titlesOf(list, editor.token)).toEqual(expected.editor);
    }
  });

  it('keeps filters, paging and widths apart, with each call’s own values', async () => {
    const authorFilter = (id: string) =>
      `{ posts(first: 20, filter: { authorId: "${globalId('User', id)}" }) { edges { node { title } } } }`;
    expect(await titlesOf(authorFilter(author.id))).toEqual(
      titles.filter((_, index) => published(index) && byAuthor(index)),
    );
    expect(await titlesOf(authorFilter(editor.id))).toEqual([]);
    expect(await titlesOf('{ posts(first: 2) { edges { node { title } } } }')).toEqual([
      titles[0],
      titles[1],
    ]);
    const first = await app.gql<{
      posts: {
        pageInfo: { endCursor: string };
        edges: { node: { title: string; body: string } }[];
      };
    }>('{ posts(first: 2) { pageInfo { endCursor } edges { node { title body } } } }');
    const after = first.data!.posts.pageInfo.endCursor;
    expect(
      await titlesOf(`{ posts(first: 2, after: "${after}") { edges { node { title } } } }`),
    ).toEqual([titles[3], titles[4]]);
    expect(
      await titlesOf(`{ posts(last: 2, before: "${after}") { edges { node { title } } } }`),
    ).toEqual([titles[0]]);
    expect(await titlesOf('{ posts(first: 1) { edges { node { title } } } }')).toEqual([titles[0]]);
    expect(first.data!.posts.edges[0]!.node.body).toContain(titles[0]);
  });

  it('runs on the pool counted per request, and inside a transaction on its connection', async () => {
    const stats: SqlStats = { queries: 0, statements: [] };
    const counted = countingDb(app.deps.db, stats);
    const rows = await postsByIds(counted, [postIds[1]!, postIds[0]!]);
    expect(rows.map((row) => row.title).sort()).toEqual([titles[0], titles[1]]);
    expect(stats.queries).toBe(1);
    expect(stats.statements).toHaveLength(1);
    expect(stats.statements[0]!.durationMs).toBeGreaterThanOrEqual(0);
    // A title changed in a transaction not yet committed: only its own connection sees it.
    await app.deps.db
      .transaction()
      .execute(async (trx) => {
        await sql`update posts set title = 'In transaction' where id = ${postIds[0]!}`.execute(trx);
        expect((await postsByIds(trx, [postIds[0]!]))[0]!.title).toBe('In transaction');
        expect((await postsByIds(counted, [postIds[0]!]))[0]!.title).toBe(titles[0]);
        throw new Error('roll back');
      })
      .catch((error: Error) => expect(error.message).toBe('roll back'));
    expect((await postsByIds(counted, [postIds[0]!]))[0]!.title).toBe(titles[0]);
    expect(stats.queries).toBe(3);
  });

  it('keeps a variant in steady use compiled through a churn of more distinct variants than it keeps', async () => {
    // Page sizes up to 1000 give each statement family more variants than it keeps (1000).
    const wide = await startTestApp({ CACHE: 'off', MAX_PAGE_SIZE: '1000' }, app);
    try {
      const hot = '{ posts(first: 3) { edges { node { title author { name } } } } }';
      /** The variants `query` compiled: 0 once it is kept. */
      const compiledBy = async (query: string) => {
        const before = variantsCompiled();
        const result = await wide.gql(query);
        expect(result.errors).toBeUndefined();
        return variantsCompiled() - before;
      };
      expect(await compiledBy(hot)).toBeGreaterThan(0);
      const churn = [
        ...Array.from({ length: 1000 }, (_, n) => `first: ${n + 1}`),
        ...Array.from({ length: 100 }, (_, n) => `last: ${n + 1}`),
      ];
      let churned = 0;
      const hotCompiles: number[] = [];
      for (const [index, page] of churn.entries()) {
        churned += await compiledBy(`{ posts(${page}) { edges { node { title } } } }`);
        if (index % 100 === 99) hotCompiles.push(await compiledBy(hot));
      }
      // Earlier tests may have compiled a few of them: still more than the family keeps.
      expect(churned).toBeGreaterThan(1000);
      expect(hotCompiles).toEqual(Array(11).fill(0));
    } finally {
      await wide.close();
    }
  });
});
