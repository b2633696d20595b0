import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser } from '../../helpers/factories.ts';

/**
 * The anonymous newest-first list when every draft is newer than every published post (an
 * import of drafts), and the list by last update when every draft was updated later (posts in
 * the pipeline): each statement must walk an index of published posts alone, not step over the
 * drafts (migrations/20261205000000_posts_published_created.ts,
 * 20261208000000_posts_published_updated.ts). The plan is the generic one the prepared statement
 * runs, as `x-quire-debug: explain` shows it (anyone, in development).
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
      timestamptz '2020-01-01' + n * interval '1 minute',
      timestamptz '2020-01-01' + n * interval '1 minute'
    from generate_series(1, ${PUBLISHED}::int) n`.execute(app.deps.db);
  await sql`
    insert into posts (author_id, title, slug, body, status, created_at, updated_at)
    select ${author.id}, 'Draft ' || n, 'draft-' || n, 'x', 'DRAFT',
      timestamptz '2026-01-01' + n * interval '1 minute',
      timestamptz '2026-01-01' + n * interval '1 minute'
    from generate_series(1, ${DRAFTS}::int) n`.execute(app.deps.db);
  await sql`analyze posts`.execute(app.deps.db);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

/** The list's statement and its plan, and the titles it answered. */
async function listed(order: string) {
  const result = await app.gql(
    `{ posts(first: 10, orderBy: { field: ${order}, direction: DESC }) { edges { node { title } } } }`,
    {},
    { headers: { 'x-quire-debug': 'explain' } },
  );
  expect(result.errors).toBeUndefined();
  const titles = result.data!.posts.edges.map(
    (edge: { node: { title: string } }) => edge.node.title,
  );
  const statements = result.extensions?.sql.statements as { sql: string; plan?: unknown }[];
  const list = statements.filter((statement) => /from "posts"/.test(statement.sql));
  expect(list).toHaveLength(1);
  return { titles, plan: JSON.stringify(list[0]!.plan) };
}

const newestPublished = Array.from({ length: 10 }, (_, index) => `Published ${PUBLISHED - index}`);

describe('the anonymous lists behind newer drafts', () => {
  it('newest first: walks the published posts alone and answers the newest of them', async () => {
    const { titles, plan } = await listed('CREATED_AT');
    expect(titles).toEqual(newestPublished);
    expect(plan).toContain('posts_published_created_idx');
    // No filter on status: the index holds the published posts alone, so no draft is read.
    expect(plan).not.toContain('"Filter"');
  });

  it('by last update: walks the published posts alone and answers the latest of them', async () => {
    const { titles, plan } = await listed('UPDATED_AT');
    expect(titles).toEqual(newestPublished);
    expect(plan).toContain('posts_published_updated_idx');
    expect(plan).not.toContain('"Filter"');
  });
});
