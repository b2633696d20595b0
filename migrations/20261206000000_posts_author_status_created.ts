import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// An author's posts newest first as another reader sees them (a profile: `author_id = $1 and
// status = 'PUBLISHED'`) walked posts_author_created_idx and filtered: an author with 23,000
// drafts newer than their published posts cost every profile view 11 ms and 7,750 buffers
// (EXPLAIN ANALYZE at 100,000 posts). A signed-in member's lists are the merge of two walks, the
// published posts and their own others (`author_id = $1 and status <> 'PUBLISHED'`), and a walk
// of their own posts filtered by status steps over every one they published. One partial index
// per side is exact for each walk; every post is in one of the two.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create index posts_author_published_created_idx on posts (author_id, created_at desc, id desc)
      where status = 'PUBLISHED'
  `.execute(db);
  await sql`
    create index posts_author_unpublished_created_idx on posts (author_id, created_at desc, id desc)
      where status <> 'PUBLISHED'
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index posts_author_unpublished_created_idx`.execute(db);
  await sql`drop index posts_author_published_created_idx`.execute(db);
}
