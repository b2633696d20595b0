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
import type { CommentRow, PostRow } from '../../db/tables.ts';
import { postColumns } from '../post/post.repository.ts';
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

/**
 * The joined author columns of a folded comment page: its name alone (what `author { id name }`
 * reads) or all of them. The rest of a page's author fields read the others.
 */
export type FoldedAuthorWidth = 'name' | 'all';

/**
 * A comment page row as the folded statement sends it, in order: the comment's own columns but
 * its post's id (the row's post), then the author's name and, for the 'all' width, the other
 * author columns.
 */
type FoldedComment = [
  id: string,
  author_id: string,
  body: string,
  created_at: string,
  author_name: string,
  author_email?: string,
  author_role?: WithAuthor<CommentRow>['author_role'],
  author_created_at?: string,
];

const postsWithCommentPagesQuery = compiledVariants(
  ({ shape, batch, authors }: { shape: PageShape; batch: Batch; authors: FoldedAuthorWidth }) =>
    `${pageShapeKey(shape)}:${batch}:${authors}`,
  (db: Db, { shape, batch, authors }, p: Params<PageParams & { ids: readonly string[] }>) => {
    const { condition, orderBy, limit } = keysetClausesOf(commentOrder, shape, p);
    const page = db
      .selectFrom('comments')
      .selectAll()
      .where('comments.post_id', '=', sql.ref<string>('posts.id'))
      .where(condition)
      .orderBy(orderBy)
      .limit(limit);
    // Arrays rather than objects: no key names per row to build in Postgres and parse here (the
    // object form cost Postgres more than the client saved; bench/probe-fold.ts). Timestamps as
    // text, so they read exactly as the unfolded page's columns (UTC session). The author's other
    // columns (a timestamp's text among them) only when the selection reads them.
    const otherAuthorColumns =
      authors === 'all'
        ? sql`, comment_authors.email, comment_authors.role, comment_authors.created_at::text`
        : sql``;
    return db
      .selectFrom('posts')
      .innerJoin('users', 'users.id', 'posts.author_id')
      .select(postColumns)
      .select(authorColumns)
      .select(
        sql<
          FoldedComment[]
        >`(select coalesce(json_agg(json_build_array(comments.id::text, comments.author_id::text, comments.body, comments.created_at::text, comment_authors.name${otherAuthorColumns}) order by ${orderBy}), '[]') from (${page}) as comments inner join users as comment_authors on comment_authors.id = comments.author_id)`.as(
          'comment_page',
        ),
      )
      .where('posts.id', '=', idIn(p.ids, batch));
  },
);

/**
 * Posts by id with their authors' columns, each with one page of its comments (with theirs) in
 * the same statement: a post page is one statement where the post and its comments were two.
 * The comments come in query order, as `commentPagesByPosts` returns them; with the 'name'
 * author width their authors carry the name alone (the other author columns are undefined).
 */
export async function postsWithCommentPages(
  db: Db,
  ids: readonly string[],
  page: PageRequest,
  authors: FoldedAuthorWidth,
): Promise<{ post: WithAuthor<PostRow>; comments: WithAuthor<CommentRow>[] }[]> {
  const rows = await postsWithCommentPagesQuery(
    db,
    { shape: pageShape(page), batch: batchOf(ids), authors },
    { ids, ...pageParams(page) },
  );
  const comment = authors === 'all' ? withAllAuthorColumns : withAuthorName;
  return rows.map(({ comment_page, ...post }) => ({
    post,
    comments: comment_page.map((row) => comment(row, post.id)),
  }));
}

/** A folded comment with every author column, in the unfolded row's column order. */
const withAllAuthorColumns = (row: FoldedComment, postId: string): WithAuthor<CommentRow> => ({
  id: row[0],
  post_id: postId,
  author_id: row[1],
  body: row[2],
  created_at: row[3],
  author_email: row[5]!,
  author_name: row[4],
  author_role: row[6]!,
  author_created_at: row[7]!,
});

/**
 * A folded comment with its author's name alone: the other author columns are undefined (set,
 * not read past the array's end, so both widths make objects of one shape).
 */
const withAuthorName = (row: FoldedComment, postId: string): WithAuthor<CommentRow> =>
  ({
    id: row[0],
    post_id: postId,
    author_id: row[1],
    body: row[2],
    created_at: row[3],
    author_email: undefined,
    author_name: row[4],
    author_role: undefined,
    author_created_at: undefined,
  }) as unknown as WithAuthor<CommentRow>;

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
