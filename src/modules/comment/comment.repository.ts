import { sql } from 'kysely';
import {
  type Batch,
  batchOf,
  compiledBatch,
  compiledVariants,
  idIn,
  type Params,
} from '../../db/compiled-query.ts';
import type { Db } from '../../db/database.ts';
import {
  type KeysetOrder,
  keysetClausesOf,
  type PageParams,
  type PageRequest,
  type PageShape,
  pageParams,
  pageShape,
  pageShapeKey,
} from '../../db/keyset.ts';
import { childrenOfParentsQuery } from '../../db/lateral.ts';
import type { CommentRow } from '../../db/tables.ts';
import { authorColumns, type WithAuthor } from '../user/user.repository.ts';

export const commentOrder: KeysetOrder = {
  name: 'comment:CREATED_AT:DESC',
  expression: sql.ref('comments.created_at'),
  kind: 'timestamp',
  direction: 'desc',
  idColumn: 'comments.id',
};

const commentsByIdsQuery = compiledBatch((db, batch, p: Params<{ ids: readonly string[] }>) =>
  db.selectFrom('comments').selectAll().where('comments.id', '=', idIn(p.ids, batch)),
);

export async function commentsByIds(db: Db, ids: readonly string[]): Promise<CommentRow[]> {
  return commentsByIdsQuery(db, batchOf(ids), { ids });
}

const commentPagesQuery = compiledVariants(
  ({ shape, batch }: { shape: PageShape; batch: Batch }) => `${pageShapeKey(shape)}:${batch}`,
  (db: Db, { shape, batch }, p: Params<PageParams & { postIds: readonly string[] }>) => {
    const { condition, orderBy, limit } = keysetClausesOf(commentOrder, shape, p);
    return childrenOfParentsQuery(db, p.postIds, batch, (postId) =>
      db
        .selectFrom('comments')
        .innerJoin('users', 'users.id', 'comments.author_id')
        .selectAll('comments')
        .select(authorColumns)
        .where('comments.post_id', '=', postId)
        .where(condition)
        .orderBy(orderBy)
        .limit(limit),
    );
  },
);

/** One page of comments for each post, with their authors, in one statement. */
export async function commentPagesByPosts(
  db: Db,
  postIds: readonly string[],
  page: PageRequest,
): Promise<(WithAuthor<CommentRow> & { parent_id: string })[]> {
  return commentPagesQuery(
    db,
    { shape: pageShape(page), batch: batchOf(postIds) },
    { postIds, ...pageParams(page) },
  );
}

const commentCountsQuery = compiledBatch((db, batch, p: Params<{ postIds: readonly string[] }>) =>
  db
    .selectFrom('comments')
    .select(['comments.post_id', (eb) => eb.fn.countAll<string>().as('count')])
    .where('comments.post_id', '=', idIn(p.postIds, batch))
    .groupBy('comments.post_id'),
);

export async function countCommentsByPosts(
  db: Db,
  postIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await commentCountsQuery(db, batchOf(postIds), { postIds });
  return new Map(rows.map((row) => [row.post_id, Number(row.count)]));
}

export async function insertComment(
  db: Db,
  comment: { postId: string; authorId: string; body: string },
): Promise<CommentRow> {
  return db
    .insertInto('comments')
    .values({ post_id: comment.postId, author_id: comment.authorId, body: comment.body })
    .returningAll()
    .executeTakeFirstOrThrow();
}
