import { sql } from 'kysely';
import type { Db } from '../../../db/database.ts';
import { PIPELINE_CHANNEL } from '../../pipeline/pipeline.service.ts';
import type { AuthorRef } from './author.ts';

/**
 * User ids for these authors, by their email (case-insensitive), or for a name-only author by
 * that name; missing authors are created as AUTHORs. Two statements whatever the count.
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
    const { rows: created } = await sql<{ id: string; email: string }>`
      insert into users (email, name)
      select * from unnest(${missing.map((a) => a.email)}::text[], ${missing.map((a) => a.name)}::text[])
      returning id, lower(email) as email`.execute(db);
    for (const row of created) byEmail.set(row.email, row.id);
  }
  return new Map(authors.map((author) => [author.email, idOf(author)!]));
}

/** The slugs among these that posts already use. */
export async function takenSlugs(db: Db, slugs: readonly string[]): Promise<Set<string>> {
  const { rows } = await sql<{ slug: string }>`
    select slug from posts where slug = any(${slugs}::text[])`.execute(db);
  return new Set(rows.map((row) => row.slug));
}

/**
 * Queues one pipeline run per post, as startPipeline does one at a time (run, its steps, the
 * `run.queued` event, the post moved to QUEUED unless published), in one statement per table.
 * New posts have no active run, so no lock is needed; workers are woken at commit.
 */
export async function queueRuns(
  db: Db,
  postIds: readonly string[],
  steps: readonly string[],
  createdBy: string | null,
): Promise<number> {
  if (postIds.length === 0) return 0;
  const payload = JSON.stringify({ status: 'QUEUED', progress: 0, steps });
  const { rows } = await sql<{ count: string }>`
    with runs as (
      insert into pipeline_runs (post_id, steps, created_by)
      select post_id, ${[...steps]}::text[], ${createdBy}::bigint
      from unnest(${postIds}::bigint[]) as post_id
      returning id, post_id
    ), run_steps as (
      insert into pipeline_steps (run_id, position, name)
      select runs.id, step.position - 1, step.name
      from runs, unnest(${[...steps]}::text[]) with ordinality as step(name, position)
    ), events as (
      insert into pipeline_events (run_id, seq, type, payload)
      select id, 1, 'run.queued', ${payload}::jsonb from runs
    ), moved as (
      update posts set status = 'QUEUED', updated_at = now()
      where id in (select post_id from runs) and status <> 'PUBLISHED'
    )
    select count(*) as count from runs`.execute(db);
  await sql`select pg_notify(${PIPELINE_CHANNEL}, 'import')`.execute(db);
  return Number(rows[0]!.count);
}
