import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { type PreparingClient, preparingPool } from '../../src/db/prepared-statements.ts';
import { transact } from '../../src/db/transaction.ts';
import { usersByIds } from '../../src/modules/user/user.repository.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

// Parameterised statements run prepared, by name, on each connection: measured as less Postgres
// CPU per small read (bench/analysis.md). One pooled connection here, so every request's
// statements and the pg_prepared_statements reads below share the same session.

interface Prepared {
  name: string;
  statement: string;
  executions: number;
}

let app: TestApp;
let author: TestUser;
let postId: string;

const prepared = async (db: Db): Promise<Prepared[]> =>
  (
    await sql<Prepared>`select name, statement, (generic_plans + custom_plans)::int as executions
      from pg_prepared_statements order by name`.execute(db)
  ).rows;

const readPost = () =>
  app.gql(`query($id: ID!) { post(id: $id) { title author { name } } }`, {
    id: globalId('Post', postId),
  });

const readUser = () =>
  app.gql(`query($id: ID!) { node(id: $id) { ... on User { name } } }`, { id: author.globalId });

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off', DB_POOL_SIZE: '1' });
  author = await createUser(app.deps.db, 'AUTHOR', 'Prepared Author');
  const [post] = await createPosts(app.deps.db, [
    { authorId: author.id, title: 'Prepared once', body: 'quokka prepared statements' },
  ]);
  postId = post!.id;
});

afterAll(async () => {
  await app?.close();
});

describe('prepared statements', () => {
  it('prepares a read once per connection and runs it by name on every later request', async () => {
    for (let request = 0; request < 3; request += 1) {
      const response = await readPost();
      expect(response.errors).toBeUndefined();
      expect(response.data!.post).toEqual({
        title: 'Prepared once',
        author: { name: 'Prepared Author' },
      });
    }
    const postReads = (await prepared(app.deps.db)).filter(
      (row) => row.statement.includes('from "posts"') && row.statement.includes('"posts"."id" = ('),
    );
    expect(postReads).toHaveLength(1);
    expect(postReads[0]!.executions).toBe(3);
  });

  it('prepares a statement again, without an error, after a migration changed its result columns', async () => {
    expect((await readUser()).data!.node).toEqual({ name: 'Prepared Author' });
    const before = (await prepared(app.deps.db)).find((row) =>
      row.statement.startsWith('select * from "users"'),
    );
    expect(before).toBeDefined();

    // Another session's DDL: `select *` now has one more column than the statement was planned for.
    const admin = new pg.Client({ connectionString: app.database.url });
    await admin.connect();
    try {
      await admin.query(`alter table users add column prepared_probe text default 'x'`);
      const response = await readUser();
      expect(response.errors).toBeUndefined();
      expect(response.data!.node).toEqual({ name: 'Prepared Author' });
      const after = (await prepared(app.deps.db)).filter((row) =>
        row.statement.startsWith('select * from "users"'),
      );
      expect(after.map((row) => row.name)).not.toContain(before!.name);
      expect(after).toHaveLength(1);

      // Inside a transaction the stale statement aborts it; transact runs the transaction again.
      await admin.query('alter table users drop column prepared_probe');
      let attempts = 0;
      const users = await transact(app.deps.db, (trx) => {
        attempts += 1;
        return usersByIds(trx, [author.id]);
      });
      expect(users.map((user) => user.name)).toEqual(['Prepared Author']);
      expect(attempts).toBe(2);
    } finally {
      await admin.query('alter table users drop column if exists prepared_probe');
      await admin.end();
    }
  });

  it('keeps the plan of a page: its limit and fixed values are in the text, so Postgres switches to a generic plan', async () => {
    // A bound `limit $n` (costed at 10 % of the rows) or `status = $n` (a third) made the generic
    // plan look dearer than a custom one: every execution was planned again (generic_plans 0).
    const tag = await sql<{ id: string }>`insert into tags (name) values ('plan-kept')
      returning id`.execute(app.deps.db);
    await sql`insert into post_tags (post_id, tag_id, post_created_at)
      select id, ${tag.rows[0]!.id}, created_at from posts`.execute(app.deps.db);
    const pages = [
      '{ posts(first: 3) { edges { node { title } } } }',
      '{ posts(first: 4, filter: { tag: "plan-kept" }) { edges { node { title author { name } } } } }',
    ];
    for (let request = 0; request < 8; request += 1) {
      for (const query of pages) {
        const response = await app.gql(query);
        expect(response.errors).toBeUndefined();
        expect(response.data!.posts).toMatchObject({
          edges: [{ node: { title: 'Prepared once' } }],
        });
      }
    }
    const plans = (
      await sql<{ statement: string; generic: number; custom: number }>`select statement,
        generic_plans::int as generic, custom_plans::int as custom
        from pg_prepared_statements`.execute(app.deps.db)
    ).rows;
    const list = plans.find(
      (row) => row.statement.includes(' from "posts" ') && row.statement.endsWith(' limit 4'),
    );
    const tagWalk = plans.find(
      (row) => row.statement.includes(' from "post_tags" ') && row.statement.endsWith(' limit 5'),
    );
    for (const page of [list, tagWalk]) {
      expect(page?.statement).toContain(`"posts"."status" = 'PUBLISHED'`);
      expect(page!.custom + page!.generic).toBe(8);
      // Postgres plans the first five executions for their values, then keeps the generic plan.
      expect(page!.generic).toBeGreaterThan(0);
    }
  });

  it('never prepares full-text search, whose best plan depends on the term', async () => {
    const response = await app.gql(
      '{ searchPosts(query: "quokka") { totalCount edges { node { title } } } }',
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.searchPosts.totalCount).toBe(1);
    const statements = (await prepared(app.deps.db)).map((row) => row.statement);
    expect(statements.length).toBeGreaterThan(0);
    expect(statements.filter((text) => text.includes('tsquery'))).toEqual([]);
  });

  it('prepares nothing with DB_PREPARED_STATEMENTS=off', async () => {
    const unprepared = await startTestApp(
      { CACHE: 'off', DB_POOL_SIZE: '1', DB_PREPARED_STATEMENTS: 'off' },
      app,
    );
    try {
      const response = await unprepared.gql(
        `query($id: ID!) { post(id: $id) { title author { name } } }`,
        { id: globalId('Post', postId) },
      );
      expect(response.data!.post.title).toBe('Prepared once');
      expect(await prepared(unprepared.deps.db)).toEqual([]);
    } finally {
      await unprepared.close();
    }
  });

  it('keeps at most its bound prepared per connection, deallocating the least recently used', async () => {
    const pool = new pg.Pool({ connectionString: app.database.url, max: 1 });
    const preparing = preparingPool(pool, 2);
    const client = (await preparing.connect()) as PreparingClient;
    try {
      const texts = [
        'select $1::int + 1 as n',
        'select $1::int + 2 as n',
        'select $1::int + 3 as n',
      ];
      for (const text of texts) await client.query(text, [1]);
      // The third evicted the first; using the second again makes it the most recent.
      await client.query(texts[1]!, [1]);
      expect([...client.prepared.keys()]).toEqual([texts[2], texts[1]]);
      // As a query config, not a text: it runs unprepared, so it takes no place of its own.
      const onServer = (await client.query({
        text: 'select statement from pg_prepared_statements order by statement',
      } as never)) as unknown as { rows: { statement: string }[] };
      expect(onServer.rows.map((row) => row.statement)).toEqual([texts[1], texts[2]]);
      const again = await client.query<{ n: number }>(texts[0]!, [10]);
      expect(again.rows).toEqual([{ n: 11 }]);
      expect([...client.prepared.keys()]).toEqual([texts[1], texts[0]]);
    } finally {
      client.release();
      await preparing.end();
    }
  });
});
