import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// The insert trigger that copies posts.created_at into a new link looked the post up once per
// row: a quarter of the time of a bulk import's links (30,000 links: about 250 ms of Postgres
// CPU). A writer that already knows the post's created_at (the import, from the posts insert's
// RETURNING in the same transaction) now passes it, and the trigger looks up only the links
// that arrive without one. A link moved to another post is always looked up again.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    drop trigger post_tags_post_created_at on post_tags;
    create trigger post_tags_post_created_at before insert on post_tags
      for each row when (new.post_created_at is null)
      execute function post_tags_copy_post_created_at();
    create trigger post_tags_post_id_changed before update of post_id on post_tags
      for each row execute function post_tags_copy_post_created_at();
    alter table post_tags enable always trigger post_tags_post_created_at;
    alter table post_tags enable always trigger post_tags_post_id_changed;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop trigger post_tags_post_id_changed on post_tags;
    drop trigger post_tags_post_created_at on post_tags;
    create trigger post_tags_post_created_at before insert or update of post_id on post_tags
      for each row execute function post_tags_copy_post_created_at();
    alter table post_tags enable always trigger post_tags_post_created_at;
  `.execute(db);
}
