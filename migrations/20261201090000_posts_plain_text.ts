import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// The pipeline's normalize step stores the post's Markdown as plain text once, so the keywords
// step reads 500 corpus posts' text instead of parsing 500 bodies on every run. A changed body
// clears the copy (whoever writes it), so a stale text is never read; the next run refills it.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table posts add column plain_text text;

    create function posts_clear_plain_text() returns trigger language plpgsql as $$
    begin
      new.plain_text := null;
      return new;
    end $$;
    create trigger posts_body_clears_plain_text before update of body on posts
      for each row when (old.body is distinct from new.body)
      execute function posts_clear_plain_text();
    alter table posts enable always trigger posts_body_clears_plain_text;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop trigger posts_body_clears_plain_text on posts;
    drop function posts_clear_plain_text();
    alter table posts drop column plain_text;
  `.execute(db);
}
