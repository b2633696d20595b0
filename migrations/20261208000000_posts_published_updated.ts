import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// A reader lists published posts by last update too (`orderBy: UPDATED_AT`). Posts in the
// pipeline are updated at every step, so the most recently updated posts are mostly unpublished,
// and the walk of posts_updated_idx stepped over every one of them for each page (12–14 ms with
// 23,000 such drafts at 100,000 posts, by EXPLAIN ANALYZE), as the newest-first list did before
// posts_published_created_idx. An index of the published posts alone is exact for that list.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create index posts_published_updated_idx on posts (updated_at desc, id desc)
      where status = 'PUBLISHED'
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index posts_published_updated_idx`.execute(db);
}
