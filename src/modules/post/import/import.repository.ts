import { sql } from 'kysely';
import type { Db } from '../../../db/database.ts';
import { arrayLiteral } from '../../../db/postgres-values.ts';
import type { NewPost, PostRow } from '../../../db/tables.ts';
import { PIPELINE_CHANNEL } from '../../pipeline/pipeline.service.ts';
import { postColumns } from '../post.repository.ts';
import type { AuthorRef } from './author.ts';

/**
 * User ids for these authors, by their email (case-insensitive), or for a name-only author by
 * that name; missing authors are created as AUTHORs. Two statements whatever the count (a third
 * when a concurrent import created one of them first).
 */
export async function resolveAuthors(
  db: Db,
  authors: readonly AuthorRef[],
): Promise<Map<string, string>> {
  const emails = authors.map((author) => author.email);
  const names = authors.filter((author) => !author.hasEmail).map((author) => author.name);
  // Oldest first, so a name shared by several users always picks the same one.
  const { rows: found } = await sql<{ id: string; email: string; name: string }>`
    select id, lower(email) as email, lower(name) as name from users
    where lower(email) = any(${emails}::text[]) or lower(name) = any(${names.map((name) => name.toLowerCase())}::text[])
    order by id`.execute(db);
  const byEmail = new Map<string, string>();
  const byName = new Map<string, string>();
  for (const row of found) {
    byEmail.set(row.email, row.id);
    if (!byName.has(row.name)) byName.set(row.name, row.id);
  }
  const idOf = (author: AuthorRef) =>
    byEmail.get(author.email) ??
    (author.hasEmail ? undefined : byName.get(author.name.toLowerCase()));
  const missing = [...new Map(authors.filter((a) => !idOf(a)).map((a) => [a.email, a])).values()];
  if (missing.length > 0) {
    // A concurrent import may create the same author first: its row is taken (this statement
    // waits for that transaction, then a new one sees its row), rather than the unique
    // violation failing this import with CONFLICT.
    const { rows: created } = await sql<{ id: string; email: string }>`
      insert into users (email, name)
      select * from unnest(${missing.map((a) => a.email)}::text[], ${missing.map((a) => a.name)}::text[])
      on conflict do nothing
      returning id, lower(email) as email`.execute(db);
    for (const row of created) byEmail.set(row.email, row.id);
    const raced = missing.filter((author) => !byEmail.has(author.email)).map((a) => a.email);
    if (raced.length > 0) {
      const { rows: taken } = await sql<{ id: string; email: string }>`
        select id, lower(email) as email from users where lower(email) = any(${raced}::text[])`.execute(
        db,
      );
      for (const row of taken) byEmail.set(row.email, row.id);
    }
  }
  return new Map(authors.map((author) => [author.email, idOf(author)!]));
}

/** The slugs among these that posts already use. */
export async function takenSlugs(db: Db, slugs: readonly string[]): Promise<Set<string>> {
  const { rows } = await sql<{ slug: string }>`
    select slug from posts where slug = any(${slugs}::text[])`.execute(db);
  return new Set(rows.map((row) => row.slug));
}

/** Every column of a post but its body: the caller sent the body, so it need not come back. */
const returnedColumns = postColumns.filter(
  (column): column is Exclude<(typeof postColumns)[number], 'posts.body'> =>
    column !== 'posts.body',
);

/** What the import needs back of each inserted post to link its tags. */
export type InsertedKey = Pick<PostRow, 'id' | 'slug' | 'created_at'>;

/**
 * Inserts the posts in one statement (unnest keeps the parameter count fixed whatever the batch
 * size) and returns, in no particular order, their rows (`rows: true`) or only their id, slug
 * and created_at. The bodies (up to 200,000 characters each) are never sent back: they are the
 * ones given. Decoding 5,000 rows of fifteen columns cost the API ≈ 20 ms (CPU profile), and few
 * callers read them (importPosts only when its selection asks for `posts`).
 */
export async function insertPosts(
  db: Db,
  posts: readonly NewPost[],
  rows: true,
): Promise<PostRow[]>;
export async function insertPosts(
  db: Db,
  posts: readonly NewPost[],
  rows: boolean,
): Promise<InsertedKey[] | PostRow[]>;
export async function insertPosts(
  db: Db,
  posts: readonly NewPost[],
  rows: boolean,
): Promise<InsertedKey[] | PostRow[]> {
  // Built here rather than by pg: one escaping pass per body instead of two (see arrayLiteral).
  const column = (
    key: 'author_id' | 'title' | 'slug' | 'body' | 'published_at' | 'created_at' | 'updated_at',
  ) => arrayLiteral(posts.map((post) => post[key] ?? null));
  const insert = db
    .insertInto('posts')
    .columns([
      'author_id',
      'title',
      'slug',
      'body',
      'status',
      'published_at',
      'created_at',
      'updated_at',
    ])
    .expression(
      sql`select author_id, title, slug, body, status, published_at,
          coalesce(created_at, now()), coalesce(updated_at, now())
        from unnest(
        ${column('author_id')}::bigint[], ${column('title')}::text[], ${column('slug')}::text[],
        ${column('body')}::text[], ${arrayLiteral(posts.map((post) => post.status ?? 'DRAFT'))}::text[],
        ${column('published_at')}::timestamptz[], ${column('created_at')}::timestamptz[],
        ${column('updated_at')}::timestamptz[]
      ) as new_post(author_id, title, slug, body, status, published_at, created_at, updated_at)`,
    );
  if (!rows) return insert.returning(['id', 'slug', 'created_at']).execute();
  const inserted = await insert.returning(returnedColumns).execute();
  const bodyOf = new Map(posts.map((post) => [post.slug, post.body]));
  return inserted.map((row) => ({ ...row, body: bodyOf.get(row.slug)! }));
}

/** Links of new posts to tags, as five parallel columns (one entry per link). */
export interface NewLinks {
  postIds: string[];
  tagIds: string[];
  /** Each link's post's created_at. */
  postCreatedAts: string[];
  /** Whether each link's post is published (`'true'` or `'false'`). */
  postPublished: string[];
  /** Each link's post's author. */
  postAuthorIds: string[];
}

/**
 * Links new posts to their tags in one statement, passing each post's created_at, whether it is
 * published and its author so the link's copies need no per-row lookup (see the post_tags
 * triggers' migrations).
 */
export async function linkNewPosts(db: Db, links: NewLinks): Promise<void> {
  if (links.postIds.length === 0) return;
  await sql`
    insert into post_tags (post_id, tag_id, post_created_at, post_published, post_author_id)
    select * from unnest(
      ${arrayLiteral(links.postIds)}::bigint[], ${arrayLiteral(links.tagIds)}::bigint[],
      ${arrayLiteral(links.postCreatedAts)}::timestamptz[], ${arrayLiteral(links.postPublished)}::boolean[],
      ${arrayLiteral(links.postAuthorIds)}::bigint[]
    )`.execute(db);
}

/**
 * Queues one pipeline run per post, as startPipeline does one at a time (run, its steps, the
 * `run.queued` event), in one statement per table. The posts were inserted QUEUED (unless
 * published) by the caller: an update of every post would compute its search vector again.
 * New posts have no active run, so no lock is needed; workers are woken at commit.
 */
export async function queueRuns(
  db: Db,
  postIds: readonly string[],
  steps: readonly string[],
  createdBy: string | null,
  traceparent: string | null,
): Promise<number> {
  if (postIds.length === 0) return 0;
  const payload = JSON.stringify({ status: 'QUEUED', progress: 0, steps });
  const { rows } = await sql<{ count: string }>`
    with runs as (
      insert into pipeline_runs (post_id, steps, created_by, traceparent)
      select post_id, ${[...steps]}::text[], ${createdBy}::bigint, ${traceparent}::text
      from unnest(${postIds}::bigint[]) as post_id
      returning id, post_id
    ), run_steps as (
      insert into pipeline_steps (run_id, position, name)
      select runs.id, step.position - 1, step.name
      from runs, unnest(${[...steps]}::text[]) with ordinality as step(name, position)
    ), events as (
      insert into pipeline_events (run_id, seq, type, payload)
      select id, 1, 'run.queued', ${payload}::jsonb from runs
    )
    select count(*) as count from runs`.execute(db);
  await sql`select pg_notify(${PIPELINE_CHANNEL}, 'import')`.execute(db);
  return Number(rows[0]!.count);
}
