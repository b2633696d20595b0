import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// Search for a reader who is not signed in (the most common) looks among published posts only.
// With one GIN index over every post, the bitmap scan intersects the term's posts with all 70,000
// entries of posts_published_idx (at 100,000 posts) before it reads a row; a GIN index of the
// published posts alone answers the term for them by itself, and also tells the planner how many
// published posts match. A draft enters it when it is published.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create index posts_published_search_idx on posts using gin (search)
      where status = 'PUBLISHED'
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index posts_published_search_idx`.execute(db);
}
