import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser } from '../../helpers/factories.ts';

/**
 * The anonymous newest-first list when every draft is newer than every published post (an
 * import of drafts): its statement must walk an index of published posts alone, not step over
 * the drafts (migrations/20261205000000_posts_published_created.ts). The plan is the generic one
 * the prepared statement runs, as `x-quire-debug: explain` shows it (anyone, in development).
 */
let app: TestApp;
// Mostly published, as a live table is, so the planner takes them to be spread evenly over time.
const PUBLISHED = 20_000;
const DRAFTS = 5000;

beforeAll(async () => {
  app = await startTestApp({ NODE_ENV: 'development', CACHE: 'off' });
  const author = await createUser(app.deps.db, 'AUTHOR', 'Drafty');
  await sql`
    insert into posts (author_id, title, slug, body, status, published_at, created_at, updated_at)
    select ${author.id}, 'Published ' || n, 'published-' || n, 'x', 'PUBLISHED',
      timestamptz '2020-01-01' + n * interval '1 minute',
      timestamptz '2020-01-01' + n * interval '1 minute', now()
    from generate_series(1, ${PUBLISHED}::int) n`.execute(app.deps.db);
  await sql`
    insert into posts (author_id, title, slug, body, status, created_at, updated_at)
    select ${author.id}, 'Draft ' || n, 'draft-' || n, 'x', 'DRAFT',
      timestamptz '2026-01-01' + n * interval '1 minute', now()
    from generate_series(1, ${DRAFTS}::int) n`.execute(app.deps.db);
  await sql`analyze posts`.execute(app.deps.db);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

describe('the anonymous newest-first list behind newer drafts', () => {
  it('walks the published posts alone and answers the newest of them', async () => {
    const result = await app.gql(
      '{ posts(first: 10) { edges { node { title status } } } }',
      {},
      { headers: { 'x-quire-debug': 'explain' } },
    );
    expect(result.errors).toBeUndefined();
    const titles = result.data!.posts.edges.map(
      (edge: { node: { title: string; status: string } }) => edge.node.title,
    );
    expect(titles).toEqual(
      Array.from({ length: 10 }, (_, index) => `Published ${PUBLISHED - index}`),
    );
    const statements = result.extensions?.sql.statements as { sql: string; plan?: unknown }[];
    const list = statements.filter((statement) => /from "posts"/.test(statement.sql));
    expect(list).toHaveLength(1);
    const plan = JSON.stringify(list[0]!.plan);
    expect(plan).toContain('posts_published_created_idx');
    // No filter on status: the index holds the published posts alone, so no draft is read.
    expect(plan).not.toContain('"Filter"');
  });
});
