import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import { type KeysetOrder, keysetClauses, type PageRequest } from '../../db/keyset.ts';
import { childrenOfParents } from '../../db/lateral.ts';
import type { CommentRow } from '../../db/tables.ts';
import { authorColumns, type WithAuthor } from '../user/user.repository.ts';

export const commentOrder: KeysetOrder = {
  name: 'comment:CREATED_AT:DESC',
  expression: sql.ref('comments.created_at'),
  kind: 'timestamp',
  direction: 'desc',
  idColumn: 'comments.id',
};

export async function commentsByIds(db: Db, ids: readonly string[]): Promise<CommentRow[]> {
  return db.selectFrom('comments').selectAll().where('id', 'in', ids).execute();
}

/** One page of comments for each post, with their authors, in one statement. */
export async function commentPagesByPosts(
  db: Db,
  postIds: readonly string[],
  page: PageRequest,
): Promise<WithAuthor<CommentRow>[]> {
  const { condition, orderBy, limit } = keysetClauses(commentOrder, page);
  return childrenOfParents(db, postIds, (postId) =>
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
}

export async function countCommentsByPosts(
  db: Db,
  postIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('comments')
    .select(['post_id', (eb) => eb.fn.countAll<string>().as('count')])
    .where('post_id', 'in', postIds)
    .groupBy('post_id')
    .execute();
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
