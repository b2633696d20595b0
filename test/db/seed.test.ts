import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSeedText, seed } from '../../src/db/seed.ts';
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

  it('makes posts of real README headings and paragraphs, with their word counts', async () => {
    const text = await loadSeedText();
    await seed(app.deps.db, { users: 5, posts: 50, commentsPerPost: 0, tags: 3 }, text);
    const paragraphs = new Set(text.paragraphs);
    const headings = new Set(text.headings);
    const posts = await app.deps.db
      .selectFrom('posts')
      .select(['title', 'body', 'word_count'])
      .limit(100)
      .execute();
    expect(posts.length).toBeGreaterThan(0);
    for (const post of posts) {
      expect(headings.has(post.title)).toBe(true);
      const parts = post.body.split('\n\n');
      expect(parts.length).toBeGreaterThanOrEqual(1);
      for (const part of parts) expect(paragraphs.has(part)).toBe(true);
      expect(post.word_count).toBe(post.body.split(/\s+/).filter(Boolean).length);
    }
    const distinct = new Set(
      posts.flatMap((post) => post.body.toLowerCase().match(/[a-z]{3,}/g) ?? []),
    );
    expect(distinct.size).toBeGreaterThan(1000);
    // Search runs over that vocabulary.
    const word = posts[0]!.body.match(/\b[A-Za-z]{7,}\b/)![0];
    const found = await app.gql('query($q: String!) { searchPosts(query: $q) { totalCount } }', {
      q: word,
    });
    expect(found.data!.searchPosts.totalCount).toBeGreaterThan(0);
  });
});
