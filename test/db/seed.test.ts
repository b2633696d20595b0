import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../../src/db/seed.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(() => app?.close());

describe('seed', () => {
  it('bulk-loads consistent data that the API serves, twice into the same database', async () => {
    const size = { users: 50, posts: 300, commentsPerPost: 3, tags: 12 };
    const first = await seed(app.deps.db, size);
    const second = await seed(app.deps.db, size);
    expect(first.rows).toBe(second.rows);
    const { rows } = await sql<{ table: string; count: string }>`
      select 'users' as table, count(*) from users union all
      select 'posts', count(*) from posts union all
      select 'comments', count(*) from comments union all
      select 'tags', count(*) from tags`.execute(app.deps.db);
    expect(Object.fromEntries(rows.map((row) => [row.table, Number(row.count)]))).toEqual({
      users: 100,
      posts: 600,
      comments: 1800,
      tags: 12,
    });
    // The load skips per-row foreign-key triggers: every reference must hold by construction.
    const { rows: dangling } = await sql<{ count: string }>`
      select (select count(*) from posts p where not exists (select 1 from users u where u.id = p.author_id))
           + (select count(*) from comments c where not exists (select 1 from posts p where p.id = c.post_id)
                                                  or not exists (select 1 from users u where u.id = c.author_id))
           + (select count(*) from post_tags pt where not exists (select 1 from posts p where p.id = pt.post_id)
                                                   or not exists (select 1 from tags t where t.id = pt.tag_id))
           as count`.execute(app.deps.db);
    expect(Number(dangling[0]!.count)).toBe(0);
    const result = await app.gql(
      '{ posts(first: 5, filter: { tag: "topic-3" }) { totalCount edges { node { author { name } tags { name } comments(first: 3) { edges { node { author { name } } } } } } } }',
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.posts.totalCount).toBeGreaterThan(0);
    for (const { node } of result.data!.posts.edges) {
      expect(node.tags.map((tag: { name: string }) => tag.name)).toContain('topic-3');
      expect(node.comments.edges).toHaveLength(3);
    }
  });
});
