import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, type TestUser } from '../helpers/factories.ts';

let development: TestApp;
let production: TestApp;
let admin: TestUser;
let author: TestUser;

interface Statement {
  sql: string;
  parameterCount: number;
  durationMs: number;
  plan?: { Plan: Record<string, unknown> };
  planError?: string;
}

// A value that reaches SQL only as a parameter: the response must never carry it.
const SECRET_SLUG = 'never-shown-7f3a9c';
const lookup = /* GraphQL */ `
  query Lookup($slug: String!) {
    post(slug: $slug) { id }
    posts(first: 2) { edges { node { title author { name } } } }
  }
`;

beforeAll(async () => {
  // No cache: every request runs its statements, so each test sees them.
  development = await startTestApp({ NODE_ENV: 'development', CACHE: 'off' });
  production = await startTestApp({ NODE_ENV: 'production', CACHE: 'off' }, development);
  admin = await createUser(development.deps.db, 'ADMIN', 'Root');
  author = await createUser(development.deps.db, 'AUTHOR', 'Ada');
  await createPosts(development.deps.db, [
    { authorId: author.id, status: 'PUBLISHED' },
    { authorId: author.id, status: 'PUBLISHED' },
  ]);
});

afterAll(async () => {
  await production?.close();
  await development?.close();
});

const debugAs = (app: TestApp, token: string | undefined, level: '1' | 'explain', query = lookup) =>
  app.gql(query, { slug: SECRET_SLUG }, { token, headers: { 'x-quire-debug': level } });

function statementsOf(result: { extensions?: Record<string, any> }): Statement[] {
  const sql = result.extensions?.sql as { queries: number; statements?: Statement[] };
  expect(sql.statements, 'the statement list').toBeDefined();
  // Every statement the request ran is listed: the count and the list agree.
  expect(sql.statements).toHaveLength(sql.queries);
  return sql.statements!;
}

describe('x-quire-debug statement list', () => {
  it('shows an admin in production the statements with placeholders, never the values', async () => {
    const result = await debugAs(production, admin.token, '1');
    expect(result.errors).toBeUndefined();
    const statements = statementsOf(result);
    // The slug lookup and the page (with its authors joined); the token lookup too unless the
    // viewer cache already holds the token.
    expect(statements.length).toBeGreaterThanOrEqual(2);
    const bySlug = statements.find((statement) => /"slug" = \$\d/.test(statement.sql));
    expect(bySlug, 'the slug lookup').toBeDefined();
    expect(bySlug!.parameterCount).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(statement.durationMs).toBeGreaterThanOrEqual(0);
      expect(statement).not.toHaveProperty('plan');
    }
    expect(JSON.stringify(result)).not.toContain(SECRET_SLUG);
  });

  it('shows an author or anonymous viewer in production only the count', async () => {
    for (const token of [author.token, undefined]) {
      for (const level of ['1', 'explain'] as const) {
        const result = await debugAs(production, token, level);
        expect(result.errors).toBeUndefined();
        expect(result.extensions?.sql.queries).toBeGreaterThan(0);
        expect(Object.keys(result.extensions?.sql)).toEqual(['queries']);
        expect(JSON.stringify(result)).not.toMatch(/select|SELECT|Plan/);
      }
    }
  });

  it('shows anyone the statements in development', async () => {
    const result = await debugAs(development, undefined, '1');
    expect(result.errors).toBeUndefined();
    const statements = statementsOf(result);
    expect(statements.some((statement) => /from "posts"/.test(statement.sql))).toBe(true);
    expect(JSON.stringify(result)).not.toContain(SECRET_SLUG);
  });

  it('adds generic EXPLAIN plans of the SELECTs with x-quire-debug: explain', async () => {
    const result = await debugAs(production, admin.token, 'explain');
    expect(result.errors).toBeUndefined();
    const statements = statementsOf(result);
    // A write (a token's last-use stamp) would be listed, never explained.
    const reads = statements.filter((statement) => /^\s*select\b/i.test(statement.sql));
    expect(reads.length).toBeGreaterThanOrEqual(2);
    for (const write of statements.filter((statement) => !reads.includes(statement)))
      expect(write).not.toHaveProperty('plan');
    for (const statement of reads) {
      expect(statement.planError).toBeUndefined();
      expect(typeof statement.plan?.Plan['Node Type'], statement.sql).toBe('string');
      // An EXPLAIN, not an EXPLAIN ANALYZE: estimates only.
      expect(statement.plan!.Plan).toHaveProperty('Plan Rows');
      expect(statement.plan!.Plan).not.toHaveProperty('Actual Rows');
    }
    // Generic plans keep the placeholders: the bound slug is folded into no condition.
    expect(JSON.stringify(result)).not.toContain(SECRET_SLUG);
    expect(JSON.stringify(statements)).toMatch(/\$1/);
  });

  it("lists a mutation's statements and explains only its reads, after it ran once", async () => {
    const title = `Explained ${Date.now()}`;
    const result = await production.gql(
      /* GraphQL */ `
        mutation Create($input: CreatePostInput!) { createPost(input: $input) { post { tags { name } } } }
      `,
      { input: { title, body: 'Body text.', tags: ['debugging'] } },
      { token: admin.token, headers: { 'x-quire-debug': 'explain' } },
    );
    expect(result.errors).toBeUndefined();
    const statements = statementsOf(result);
    const writes = statements.filter((statement) =>
      /^\s*(insert|update|delete|with)\b/i.test(statement.sql),
    );
    expect(writes.some((statement) => /insert into "?posts"? /.test(statement.sql))).toBe(true);
    for (const write of writes) {
      expect(write).not.toHaveProperty('plan');
      expect(write).not.toHaveProperty('planError');
    }
    // The post's tags, read after the write.
    const reads = statements.filter((statement) => /^\s*select\b/i.test(statement.sql));
    expect(reads.length).toBeGreaterThan(0);
    for (const read of reads) expect(read.plan?.Plan, read.sql).toBeDefined();
    const created = await development.deps.db
      .selectFrom('posts')
      .where('title', '=', title)
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    expect(Number(created.count)).toBe(1);
    expect(JSON.stringify(result)).not.toContain('Body text.');
  });

  it('leaves responses without the header alone', async () => {
    const result = await production.gql(lookup, { slug: SECRET_SLUG }, { token: admin.token });
    expect(result.extensions?.sql).toBeUndefined();
  });
});
