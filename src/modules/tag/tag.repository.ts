import { type ExpressionBuilder, sql } from 'kysely';
import {
  type Batch,
  batchOf,
  compiledBatch,
  compiledVariants,
  idIn,
  type Params,
} from '../../db/compiled-query.ts';
import type { Db } from '../../db/database.ts';
import { type KeysetOrder, keysetClauses, type PageRequest } from '../../db/keyset.ts';
import type { Database, TagRow } from '../../db/tables.ts';
import type { Viewer } from '../auth/viewer.ts';
import { viewerOf, viewerShape, visiblePosts } from '../post/post.repository.ts';

export const tagOrder: KeysetOrder = {
  name: 'tag:NAME:ASC',
  expression: sql.ref('tags.name'),
  kind: 'text',
  direction: 'asc',
  idColumn: 'tags.id',
};

/**
 * A tag is visible to a viewer when it labels at least one post that viewer may see (see
 * `visiblePosts`): one EXISTS over post_tags (indexed by tag), so no post is loaded. A tag on
 * no post at all is visible to no one.
 */
export function visibleTags(viewer: Viewer | null) {
  return (eb: ExpressionBuilder<Database, 'tags'>) =>
    eb.exists(
      eb
        .selectFrom('post_tags')
        .innerJoin('posts', 'posts.id', 'post_tags.post_id')
        .whereRef('post_tags.tag_id', '=', 'tags.id')
        .where(visiblePosts(viewer))
        .select(eb.lit(1).as('one')),
    );
}

const tagsByIdsQuery = compiledVariants(
  ({ viewer, batch }: { viewer: Viewer | null; batch: Batch }) => `${viewerShape(viewer)}:${batch}`,
  (db: Db, { viewer, batch }, p: Params<{ ids: readonly string[]; viewerId: string | null }>) =>
    db
      .selectFrom('tags')
      .selectAll()
      .where('tags.id', '=', idIn(p.ids, batch))
      .where(visibleTags(viewerOf(viewer, p.viewerId))),
);

/** The tags among `ids` the viewer may see; hidden and unknown ids are both just absent. */
export async function tagsByIds(
  db: Db,
  viewer: Viewer | null,
  ids: readonly string[],
): Promise<TagRow[]> {
  return tagsByIdsQuery(db, { viewer, batch: batchOf(ids) }, { ids, viewerId: viewer?.id ?? null });
}

const firstVisibleUseQuery = compiledVariants(
  ({ viewer, batch }: { viewer: Viewer | null; batch: Batch }) => `${viewerShape(viewer)}:${batch}`,
  (db: Db, { viewer, batch }, p: Params<{ ids: readonly string[]; viewerId: string | null }>) =>
    db
      .selectFrom('post_tags')
      .innerJoin('posts', 'posts.id', 'post_tags.post_id')
      .where('post_tags.tag_id', '=', idIn(p.ids, batch))
      .where(visiblePosts(viewerOf(viewer, p.viewerId)))
      .groupBy('post_tags.tag_id')
      .select((eb) => ['post_tags.tag_id', eb.fn.min('posts.created_at').as('first_used_at')]),
);

/**
 * Per tag, the creation time of the earliest post it labels that the viewer may see: what a
 * tag's `createdAt` may tell this viewer without dating its use on posts hidden from them.
 */
export async function firstVisibleUseByTagIds(
  db: Db,
  viewer: Viewer | null,
  tagIds: readonly string[],
): Promise<{ tag_id: string; first_used_at: string }[]> {
  return firstVisibleUseQuery(
    db,
    { viewer, batch: batchOf(tagIds) },
    { ids: tagIds, viewerId: viewer?.id ?? null },
  ) as Promise<{ tag_id: string; first_used_at: string }[]>;
}

const tagsByPostIdsQuery = compiledBatch((db, batch, p: Params<{ postIds: readonly string[] }>) =>
  db
    .selectFrom('post_tags')
    .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
    .selectAll('tags')
    .select('post_tags.post_id')
    .where('post_tags.post_id', '=', idIn(p.postIds, batch))
    .orderBy('tags.name'),
);

export async function tagsByPostIds(
  db: Db,
  postIds: readonly string[],
): Promise<(TagRow & { post_id: string })[]> {
  return tagsByPostIdsQuery(db, batchOf(postIds), { postIds });
}

/** One keyset page of the tags the viewer may see, by name. */
export async function listTags(
  db: Db,
  viewer: Viewer | null,
  page: PageRequest,
): Promise<TagRow[]> {
  const { condition, orderBy, limit } = keysetClauses(tagOrder, page);
  return db
    .selectFrom('tags')
    .selectAll()
    .where(visibleTags(viewer))
    .where(condition)
    .orderBy(orderBy)
    .limit(limit)
    .execute();
}

export async function countTags(db: Db, viewer: Viewer | null): Promise<number> {
  const { count } = await db
    .selectFrom('tags')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where(visibleTags(viewer))
    .executeTakeFirstOrThrow();
  return Number(count);
}

/**
 * Creates missing tags and returns the ids of all `names`: one statement, or two when another
 * transaction created one of the names concurrently.
 */
export async function ensureTags(db: Db, names: readonly string[]): Promise<Map<string, string>> {
  if (names.length === 0) return new Map();
  // Every writer inserts in the same order, so two writers waiting on each other's new names
  // cannot deadlock.
  const sorted = [...names].sort();
  const { rows } = await sql<{ id: string; name: string }>`
    with created as (
      insert into tags (name) select unnest(${sorted}::text[])
      on conflict (name) do nothing
      returning id, name
    )
    select id, name from created
    union all
    select id, name from tags where name = any(${sorted}::text[])
  `.execute(db);
  const ids = new Map(rows.map((row) => [row.name, row.id]));
  // A name another transaction inserted after this statement's snapshot was taken conflicts
  // (so it is not in `created`) yet is not in the snapshot either; once that transaction has
  // committed, a new statement sees it (READ COMMITTED).
  const committedMeanwhile = sorted.filter((name) => !ids.has(name));
  if (committedMeanwhile.length > 0) {
    const late = await db
      .selectFrom('tags')
      .select(['id', 'name'])
      .where('name', 'in', committedMeanwhile)
      .execute();
    for (const row of late) ids.set(row.name, row.id);
  }
  return ids;
}

/** Attaches tags to posts in one statement; existing links are kept. */
export async function linkTags(
  db: Db,
  links: readonly { postId: string; tagId: string }[],
): Promise<void> {
  if (links.length === 0) return;
  await sql`
    insert into post_tags (post_id, tag_id)
    select * from unnest(${links.map((link) => link.postId)}::bigint[], ${links.map((link) => link.tagId)}::bigint[])
    on conflict do nothing
  `.execute(db);
}

export async function unlinkTagsExcept(
  db: Db,
  postId: string,
  keepTagIds: readonly string[],
): Promise<void> {
  let query = db.deleteFrom('post_tags').where('post_id', '=', postId);
  if (keepTagIds.length > 0) query = query.where('tag_id', 'not in', keepTagIds);
  await query.execute();
}

/**
 * Tags by number of published posts: public data, the same for every viewer. Only tags on a
 * published post appear, and those are visible to everyone.
 */
export async function tagCloud(
  db: Db,
  limit: number,
): Promise<(TagRow & { post_count: number })[]> {
  const rows = await db
    .selectFrom('tags')
    .innerJoin('post_tags', 'post_tags.tag_id', 'tags.id')
    .innerJoin('posts', 'posts.id', 'post_tags.post_id')
    .selectAll('tags')
    .select((eb) => eb.fn.countAll<string>().as('post_count'))
    .where('posts.status', '=', 'PUBLISHED')
    .groupBy('tags.id')
    .orderBy('post_count', 'desc')
    .orderBy('tags.name')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ ...row, post_count: Number(row.post_count) }));
}
