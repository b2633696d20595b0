import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// A tag page walks post_tags_tag_created_idx newest first and joins each post to keep those the
// reader may see: with 23,000 drafts of the tag newer than its published posts, every anonymous
// page joined and dropped all of them (37–50 ms and 69,000 buffers per page at 100,000 posts, by
// EXPLAIN ANALYZE). With whether the post is published and who wrote it beside the link, as its
// created_at already is, one index walks the tag's published links and another a member's own
// unpublished ones. The same triggers keep the copies equal to the post's whoever writes either
// table; a link inserted with every copy given (the import) is not looked up. A link's copies are
// read with the post locked FOR SHARE: a link's foreign key locks only FOR KEY SHARE, which a
// status change does not wait for, so a link inserted while another transaction published the
// post (the pipeline's tag step beside an editor) would keep the old status for good.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table post_tags add column post_published boolean, add column post_author_id bigint;
    update post_tags set post_published = posts.status = 'PUBLISHED', post_author_id = posts.author_id
      from posts where posts.id = post_tags.post_id;
    alter table post_tags alter column post_published set not null,
      alter column post_author_id set not null;

    create or replace function post_tags_copy_post_created_at() returns trigger language plpgsql as $$
    begin
      select created_at, status = 'PUBLISHED', author_id
        into new.post_created_at, new.post_published, new.post_author_id
        from posts where id = new.post_id for share;
      return new;
    end $$;
    drop trigger post_tags_post_created_at on post_tags;
    create trigger post_tags_post_created_at before insert on post_tags
      for each row when (new.post_created_at is null or new.post_published is null
        or new.post_author_id is null)
      execute function post_tags_copy_post_created_at();
    alter table post_tags enable always trigger post_tags_post_created_at;

    create function posts_propagate_published_author() returns trigger language plpgsql as $$
    begin
      update post_tags set post_published = new.status = 'PUBLISHED', post_author_id = new.author_id
        where post_id = new.id;
      return null;
    end $$;
    create trigger posts_published_author_to_post_tags after update of status, author_id on posts
      for each row when ((old.status = 'PUBLISHED') is distinct from (new.status = 'PUBLISHED')
        or old.author_id is distinct from new.author_id)
      execute function posts_propagate_published_author();
    alter table posts enable always trigger posts_published_author_to_post_tags;

    create index post_tags_tag_published_created_idx
      on post_tags (tag_id, post_created_at desc, post_id desc) where post_published;
    create index post_tags_tag_author_unpublished_created_idx
      on post_tags (tag_id, post_author_id, post_created_at desc, post_id desc)
      where not post_published;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop index post_tags_tag_author_unpublished_created_idx;
    drop index post_tags_tag_published_created_idx;
    drop trigger posts_published_author_to_post_tags on posts;
    drop function posts_propagate_published_author();
    drop trigger post_tags_post_created_at on post_tags;
    create or replace function post_tags_copy_post_created_at() returns trigger language plpgsql as $$
    begin
      select created_at into new.post_created_at from posts where id = new.post_id;
      return new;
    end $$;
    create trigger post_tags_post_created_at before insert on post_tags
      for each row when (new.post_created_at is null)
      execute function post_tags_copy_post_created_at();
    alter table post_tags enable always trigger post_tags_post_created_at;
    alter table post_tags drop column post_published, drop column post_author_id;
  `.execute(db);
}
