import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// A tag page lists a tag's posts newest first. With the post's creation time beside the link,
// one index walks a tag's posts in that order and stops after the page, instead of reading
// every post with the tag (thousands for a common tag) to sort them and keep twenty.
// Triggers keep the copy equal to posts.created_at whoever writes either table; they fire ALWAYS,
// so bulk loads that skip foreign-key triggers (session_replication_role = replica) fill it too.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table post_tags add column post_created_at timestamptz;
    update post_tags set post_created_at = posts.created_at
      from posts where posts.id = post_tags.post_id;
    alter table post_tags alter column post_created_at set not null;

    create function post_tags_copy_post_created_at() returns trigger language plpgsql as $$
    begin
      select created_at into new.post_created_at from posts where id = new.post_id;
      return new;
    end $$;
    create trigger post_tags_post_created_at before insert or update of post_id on post_tags
      for each row execute function post_tags_copy_post_created_at();

    create function posts_propagate_created_at() returns trigger language plpgsql as $$
    begin
      update post_tags set post_created_at = new.created_at where post_id = new.id;
      return null;
    end $$;
    create trigger posts_created_at_to_post_tags after update of created_at on posts
      for each row when (old.created_at is distinct from new.created_at)
      execute function posts_propagate_created_at();

    alter table post_tags enable always trigger post_tags_post_created_at;
    alter table posts enable always trigger posts_created_at_to_post_tags;

    create index post_tags_tag_created_idx
      on post_tags (tag_id, post_created_at desc, post_id desc);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop trigger posts_created_at_to_post_tags on posts;
    drop function posts_propagate_created_at();
    drop trigger post_tags_post_created_at on post_tags;
    drop function post_tags_copy_post_created_at();
    drop index post_tags_tag_created_idx;
    alter table post_tags drop column post_created_at;
  `.execute(db);
}
