import { createHash } from 'node:crypto';
import {
  type Compilable,
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type SelectQueryBuilder,
  sql,
} from 'kysely';
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
  keysetClauses,
  keysetClausesOf,
  type PageParams,
  type PageRequest,
  type PageShape,
  pageParams,
  pageShape,
  pageShapeKey,
} from '../../db/keyset.ts';
import { childrenOfParentsQuery } from '../../db/lateral.ts';
import type {
  Database,
  NewPost,
  PostRow,
  PostStatus,
  PostUpdate,
  UserRow,
} from '../../db/tables.ts';
import { isStaff, type Viewer } from '../auth/viewer.ts';
import { type AuthorColumn, authorColumns, type WithAuthor } from '../user/user.repository.ts';

/** The columns every post field but the large text ones reads: what lists fetch by default. */
export const narrowPostColumns = [
  'posts.id',
  'posts.author_id',
  'posts.title',
  'posts.slug',
  'posts.status',
  'posts.word_count',
  'posts.reading_minutes',
  'posts.readability_score',
  'posts.seo_score',
  'posts.created_at',
  'posts.updated_at',
  'posts.published_at',
] as const;

export const postColumns = [
  ...narrowPostColumns,
  'posts.body',
  'posts.summary',
  'posts.meta_description',
  'posts.keywords',
] as const;

/** Columns that can be large (a body holds up to 200,000 characters): fetched only when asked. */
export type WidePostColumn = 'body' | 'summary' | 'meta_description' | 'keywords';

/** A column a post list may select, as Kysely names it. */
export type PostListColumn = (typeof postColumns)[number];

/**
 * A post as a list fetches it: the id, its order's column and the columns its selection reads
 * (PostWidth), so a field reads only a column its own selection asked for; a wide column missing
 * from the row is loaded apart (post.schema.ts). `comment_count` (int8 as text) is there when the
 * selection asked for `comments { totalCount }`.
 */
export type PostListRow = Omit<PostRow, WidePostColumn> &
  Partial<Pick<PostRow, WidePostColumn>> & { comment_count?: string | null };

/**
 * What a list statement selects: `columns` of the post (besides the id and the order's column),
 * `author` joins those of the author's columns (null: no join), `commentCount` counts each post's
 * comments in the same statement. pg decodes every column of every row and builds a parser per
 * column on each execution, so a list of titles selects three columns, not sixteen.
 */
export interface PostWidth {
  columns: readonly PostListColumn[];
  author: readonly AuthorColumn[] | null;
  commentCount: boolean;
  /** The three above as a part of a compiled variant's key. */
  key: string;
}

/** A PostWidth with its columns in a fixed order, so one selection has one statement text. */
export function postWidth(
  columns: Iterable<PostListColumn>,
  author: Iterable<AuthorColumn> | null,
  commentCount: boolean,
): PostWidth {
  const chosen = new Set(columns);
  const joined = author && new Set(author);
  const width = {
    columns: postColumns.filter((column) => chosen.has(column)),
    author: joined && authorColumns.filter((column) => joined.has(column)),
    commentCount,
  };
  return {
    ...width,
    key: `${width.columns.join()}:${width.author?.join() ?? '-'}:${commentCount}`,
  };
}

/** Each listed post's comment count: one index-only count per row of the page. */
const commentCount = (eb: ExpressionBuilder<Database, 'posts'>) =>
  eb
    .selectFrom('comments')
    .select(eb.fn.countAll<string>().as('count'))
    .whereRef('comments.post_id', '=', 'posts.id')
    .as('comment_count');

/** A list's columns: the width's, the id and the order's column (cursors read it). */
const listColumns = (width: PostWidth, orderField: PostOrderField) =>
  postColumns.filter(
    (column) =>
      column === 'posts.id' ||
      column === orderColumns[orderField].column ||
      width.columns.includes(column),
  );

export interface PostFilter {
  status?: PostStatus | null;
  authorId?: string | null;
  tag?: string | null;
  search?: string | null;
}

export type PostOrderField = 'CREATED_AT' | 'UPDATED_AT' | 'PUBLISHED_AT' | 'TITLE';
export type SortDirection = 'ASC' | 'DESC';

const orderColumns = {
  CREATED_AT: { column: 'posts.created_at', kind: 'timestamp' },
  UPDATED_AT: { column: 'posts.updated_at', kind: 'timestamp' },
  PUBLISHED_AT: { column: 'posts.published_at', kind: 'timestamp' },
  TITLE: { column: 'posts.title', kind: 'text' },
} as const;

const postOrders = new Map<string, KeysetOrder>();

/** The keyset order of a post list; one object per field and direction, built once. */
export function postOrder(field: PostOrderField, direction: SortDirection): KeysetOrder {
  const name = `post:${field}:${direction}`;
  let order = postOrders.get(name);
  if (!order) {
    const { column, kind } = orderColumns[field];
    order = {
      name,
      expression: sql.ref(column),
      kind,
      direction: direction === 'ASC' ? 'asc' : 'desc',
      idColumn: 'posts.id',
    };
    postOrders.set(name, order);
  }
  return order;
}

export const postSortKey = (field: PostOrderField) => (row: PostListRow) => ({
  value: row[orderColumns[field].column.slice('posts.'.length) as keyof PostListRow] as string,
  id: row.id,
});

/** What of the viewer shapes `visiblePosts`' SQL: a key for compiled variants. */
export const viewerShape = (viewer: Viewer | null): 'anonymous' | 'member' | 'staff' =>
  isStaff(viewer) ? 'staff' : viewer ? 'member' : 'anonymous';

/** The viewer as a query compiled per viewerShape sees it: the id is the parameter `id`. */
export const viewerOf = (viewer: Viewer | null, id: string | null): Viewer | null =>
  viewer && { id: id!, role: viewer.role };

/** What the viewer may see: published posts, their own, or everything for editors. */
export function visiblePosts(viewer: Viewer | null) {
  return (eb: ExpressionBuilder<Database, 'posts'>) => {
    if (isStaff(viewer)) return eb.lit(true);
    const published = eb('posts.status', '=', 'PUBLISHED');
    return viewer ? eb.or([published, eb('posts.author_id', '=', viewer.id)]) : published;
  };
}

/**
 * The published posts: what everyone sees, a member's first walk (see `mergesWalks`). The status
 * is written into the text even where a statement is built per call (search), so Postgres plans
 * each walk with its partial index.
 */
const published = (eb: ExpressionBuilder<Database, 'posts'>) =>
  eb('posts.status', '=', sql.lit('PUBLISHED'));

/** A member's own posts that are not published: their second walk (see `mergesWalks`). */
const ownUnpublished = (viewer: Viewer) => (eb: ExpressionBuilder<Database, 'posts'>) =>
  eb.and([eb('posts.author_id', '=', viewer.id), eb('posts.status', '<>', sql.lit('PUBLISHED'))]);

/**
 * Whether a page for a signed-in member (`status = 'PUBLISHED' or author_id = $viewer`) is the
 * merge of two keyset walks, published posts and the member's own others, each stopping after
 * the page. No index holds that condition in creation order, so one walk of posts_created_idx
 * stepped over every post hidden from the member (23,000 drafts of another author newer than
 * every published post: 11 ms and 7,663 buffers for a page of ten, 0.1 ms merged; bench/analysis.md,
 * "Signed-in viewers' plans"). Only the creation order has an index for both walks; a status
 * filter makes the second walk read the member's every draft for nothing.
 */
function mergesWalks(query: PostListQuery): query is PostListQuery & { viewer: Viewer } {
  return (
    viewerShape(query.viewer) === 'member' &&
    query.orderField === 'CREATED_AT' &&
    !query.filter.status
  );
}

/** Whether a member's count adds up the two halves mergesWalks walks (any order; no search). */
const mergesCounts = (query: PostFilterQuery) =>
  viewerShape(query.viewer) === 'member' && !query.filter.status && !query.filter.search;

/**
 * Newest-first (or oldest-first) posts of one tag: post_tags carries each post's created_at, so
 * the page walks post_tags_tag_created_idx and stops after it instead of sorting every post of the
 * tag. The cursor name is the posts order's, so cursors pass between both ways of listing.
 */
function tagWalk(
  db: Db,
  tagId: Expression<string>,
  order: KeysetOrder,
  shape: PageShape,
  p: Params<PageParams>,
) {
  const { condition, orderBy, limit } = keysetClausesOf(
    { ...order, expression: sql.ref('post_tags.post_created_at'), idColumn: 'post_tags.post_id' },
    shape,
    p,
  );
  return db
    .selectFrom('post_tags')
    .innerJoin('posts', 'posts.id', 'post_tags.post_id')
    .where('post_tags.tag_id', '=', tagId)
    .where(condition)
    .orderBy(orderBy)
    .limit(limit);
}

/**
 * One page of a tag's posts that the query lets its viewer see, newest (or oldest) first, with
 * the columns of `width` and the posts matching `filter` (the query's other filters). Readers walk
 * the tag's published links alone (post_tags_tag_published_created_idx): a walk of every link
 * joined and dropped each newer draft of the tag (23,000: 37–50 ms a page). A member's page
 * merges that walk with one of their own unpublished links of the tag (as mergesWalks). The
 * post's own status and author are still tested: the link's copies only choose the index.
 */
function tagPage(
  db: Db,
  tagId: Expression<string>,
  query: PostListQuery,
  filter: PostFilter,
  shape: PageShape,
  p: Params<PageParams>,
  width: PostWidth,
) {
  const walk = (visible: ReturnType<typeof visiblePosts>) =>
    tagWalk(db, tagId, query.order, shape, p)
      .select(listColumns(width, query.orderField))
      .where(visible)
      .where(matchesFilter(filter, query.orderField));
  if (isStaff(query.viewer)) return walk(visiblePosts(query.viewer));
  const publishedLinks = walk(published).where(sql<boolean>`post_tags.post_published`);
  if (!query.viewer) return publishedLinks;
  if (!mergesWalks(query)) return walk(visiblePosts(query.viewer));
  const viewer = query.viewer;
  const ownLinks = walk(ownUnpublished(viewer))
    .where(sql<boolean>`not post_tags.post_published`)
    .where('post_tags.post_author_id', '=', viewer.id);
  const { orderBy, limit } = keysetClausesOf(query.order, shape, p);
  // No post in common: one status excludes the other.
  const merged = sql<PostRow>`((${publishedLinks}) union all (${ownLinks}))`;
  return (db as unknown as Kysely<{ posts: PostRow }>)
    .selectFrom(merged.as('posts'))
    .select(listColumns(width, query.orderField))
    .orderBy(orderBy)
    .limit(limit) as unknown as typeof publishedLinks;
}

function matchesFilter(filter: PostFilter, order: PostOrderField | null) {
  return (eb: ExpressionBuilder<Database, 'posts'>) => {
    const conditions = [];
    if (filter.status) conditions.push(eb('posts.status', '=', filter.status));
    if (filter.authorId) conditions.push(eb('posts.author_id', '=', filter.authorId));
    if (filter.tag) {
      conditions.push(
        eb.exists(
          eb
            .selectFrom('post_tags')
            .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
            .whereRef('post_tags.post_id', '=', 'posts.id')
            .where('tags.name', '=', filter.tag)
            .select(eb.lit(1).as('one')),
        ),
      );
    }
    if (filter.search) {
      conditions.push(
        eb(sql`posts.search`, '@@', sql`websearch_to_tsquery('english', ${filter.search})`),
      );
    }
    // Keyset comparisons cannot order NULLs; ordering by publication lists published posts only.
    if (order === 'PUBLISHED_AT') conditions.push(eb('posts.published_at', 'is not', null));
    return eb.and(conditions);
  };
}

export interface PostListQuery {
  viewer: Viewer | null;
  filter: PostFilter;
  orderField: PostOrderField;
  order: KeysetOrder;
  page: PageRequest;
}

/** What decides which posts a list or count holds. */
type PostFilterQuery = Pick<PostListQuery, 'viewer' | 'filter' | 'orderField'>;

/** The values of a PostFilterQuery, bound per call to its compiled statement. */
interface FilterParams {
  viewerId: string | null;
  status: PostStatus | null;
  authorId: string | null;
  tag: string | null;
  search: string | null;
}

const filterParams = ({ viewer, filter }: PostFilterQuery): FilterParams => ({
  viewerId: viewer?.id ?? null,
  status: filter.status ?? null,
  authorId: filter.authorId ?? null,
  tag: filter.tag ?? null,
  search: filter.search ?? null,
});

/**
 * What shapes a filtered posts statement: who asks, which filters are set, the order. Null with
 * a search: built per call, as full-text statements are never prepared (prepared-statements.ts).
 */
const filterKey = ({ viewer, filter, orderField }: PostFilterQuery): string | null =>
  filter.search
    ? null
    : `${viewerShape(viewer)}:${filter.status ? 'status' : ''}:${filter.authorId ? 'author' : ''}:${filter.tag ? 'tag' : ''}:${orderField}`;

/** The query with its viewer's id and filter values replaced by the parameters `p`. */
function filterTemplate<Query extends PostFilterQuery>(
  query: Query,
  p: Params<FilterParams>,
): Query {
  const { status, authorId, tag, search } = query.filter;
  return {
    ...query,
    viewer: viewerOf(query.viewer, p.viewerId),
    filter: {
      status: status ? p.status : null,
      authorId: authorId ? p.authorId : null,
      tag: tag ? p.tag : null,
      search: search ? p.search : null,
    },
  };
}

/** The variant key of a list statement: its filters, order, page shape and width. */
function listKey(query: PostListQuery, width: PostWidth, parent = ''): string | null {
  const key = filterKey(query);
  return (
    key &&
    `${parent}:${key}:${query.order.name}:${pageShapeKey(pageShape(query.page))}:${width.key}`
  );
}

const listPostsQuery = compiledVariants(
  ({ query, width }: { query: PostListQuery; width: PostWidth }) => listKey(query, width),
  (db: Db, { query, width }, p: Params<FilterParams & PageParams>) => {
    const template = filterTemplate(query, p);
    const { tag, ...otherFilters } = template.filter;
    const shape = pageShape(query.page);
    const page =
      tag && query.orderField === 'CREATED_AT'
        ? tagPage(
            db,
            db.selectFrom('tags').select('tags.id').where('tags.name', '=', tag).$asScalar(),
            template,
            otherFilters,
            shape,
            p,
            width,
          ).$if(width.commentCount, (qb) => qb.select(commentCount))
        : postsPage(db, template, shape, p, width).$if(width.commentCount, (qb) =>
            qb.select(commentCount),
          );
    return width.author
      ? page.innerJoin('users', 'users.id', 'posts.author_id').select(width.author)
      : page;
  },
);

/** One page of posts, with the authors' columns `width.author` names. */
export async function listPosts(
  db: Db,
  query: PostListQuery,
  width: PostWidth,
): Promise<(PostListRow | WithAuthor<PostListRow>)[]> {
  return listPostsQuery(
    db,
    { query, width },
    { ...filterParams(query), ...pageParams(query.page) },
  );
}

/**
 * One page of the posts the query lets its viewer see with `columns`, walked by `walk` (which
 * selects them and adds its own conditions, order and limit): one walk, or for a member the merge
 * of two (mergesWalks), whose alias is `posts` too, so callers add columns and joins alike.
 * `carried` are columns only the caller's additions read (a join's key), selected by the walks.
 */
function visibleWalks<Walk extends SelectQueryBuilder<Database, 'posts', object>>(
  db: Db,
  query: PostListQuery,
  shape: PageShape,
  p: Params<PageParams>,
  columns: readonly PostListColumn[],
  walk: (visible: ReturnType<typeof visiblePosts>, columns: readonly PostListColumn[]) => Walk,
  carried: readonly PostListColumn[] = [],
): Walk {
  if (!mergesWalks(query)) return walk(visiblePosts(query.viewer), columns);
  const { orderBy, limit } = keysetClausesOf(query.order, shape, p);
  const walked = [...columns, ...carried.filter((column) => !columns.includes(column))];
  // They hold no post in common: one status excludes the other.
  const merged = sql<PostRow>`((${walk(published, walked)}) union all (${walk(ownUnpublished(query.viewer), walked)}))`;
  return (db as unknown as Kysely<{ posts: PostRow }>)
    .selectFrom(merged.as('posts'))
    .select(columns)
    .orderBy(orderBy)
    .limit(limit) as unknown as Walk;
}

/** One page of the posts the query lets its viewer see, with the columns of `width`. */
function postsPage(
  db: Db,
  query: PostListQuery,
  shape: PageShape,
  p: Params<PageParams>,
  width: PostWidth,
) {
  const { condition, orderBy, limit } = keysetClausesOf(query.order, shape, p);
  return visibleWalks(
    db,
    query,
    shape,
    p,
    listColumns(width, query.orderField),
    (visible, columns) =>
      db
        .selectFrom('posts')
        .select(columns)
        .where(visible)
        .where(matchesFilter(query.filter, query.orderField))
        .where(condition)
        .orderBy(orderBy)
        .limit(limit),
    width.author ? ['posts.author_id'] : [],
  );
}

const countPostsQuery = compiledVariants(
  filterKey,
  (db: Db, query: PostFilterQuery, p: Params<FilterParams>) => {
    const template = filterTemplate(query, p);
    const count = (visible: ReturnType<typeof visiblePosts>) =>
      db
        .selectFrom('posts')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where(visible)
        .where(matchesFilter(template.filter, query.orderField));
    if (template.viewer && mergesCounts(query)) {
      // As mergesWalks: each half counts through its own index (a member's count of every post
      // they may see read the whole table in parallel: 59–100 ms at 123,000 posts).
      return db.selectNoFrom(
        sql<string>`(${count(published)}) + (${count(ownUnpublished(template.viewer))})`.as(
          'count',
        ),
      );
    }
    const matches = db
      .selectFrom('posts')
      .select(sql.lit(1).as('one'))
      .where(visiblePosts(template.viewer))
      .where(matchesFilter(template.filter, query.orderField));
    return db
      .selectFrom((query.filter.search ? matches.limit(SEARCH_CANDIDATES) : matches).as('matches'))
      .select((eb) => eb.fn.countAll<string>().as('count'));
  },
);

/**
 * How many posts the list holds. With a search, at most SEARCH_CANDIDATES: a broad term matches
 * most posts, and counting them all reads every match, as ranking did before it was bounded.
 */
export async function countPosts(db: Db, query: PostFilterQuery): Promise<number> {
  const [row] = await countPostsQuery(db, query, filterParams(query));
  return Number(row!.count);
}

const postsByParentsQuery = compiledVariants(
  ({
    parent,
    query,
    width,
    batch,
  }: {
    parent: 'author' | 'tag';
    query: PostListQuery;
    width: PostWidth;
    batch: Batch;
  }) => listKey(query, width, `${parent}:${batch}`),
  (
    db: Db,
    { parent, query, width, batch },
    p: Params<FilterParams & PageParams & { parentIds: readonly string[] }>,
  ) => {
    const template = filterTemplate(query, p);
    const shape = pageShape(query.page);
    if (parent === 'tag' && query.orderField === 'CREATED_AT') {
      return childrenOfParentsQuery(db, p.parentIds, batch, (tagId) =>
        tagPage(db, tagId, template, template.filter, shape, p, width).$if(
          width.commentCount,
          (qb) => qb.select(commentCount),
        ),
      );
    }
    const { condition, orderBy, limit } = keysetClausesOf(query.order, shape, p);
    return childrenOfParentsQuery(db, p.parentIds, batch, (parentId) =>
      visibleWalks(
        db,
        template,
        shape,
        p,
        listColumns(width, query.orderField),
        (visible, columns) =>
          db
            .selectFrom('posts')
            .select(columns)
            .where((eb) =>
              parent === 'author'
                ? eb('posts.author_id', '=', parentId)
                : eb.exists(
                    eb
                      .selectFrom('post_tags')
                      .whereRef('post_tags.post_id', '=', 'posts.id')
                      .where('post_tags.tag_id', '=', parentId)
                      .select(eb.lit(1).as('one')),
                  ),
            )
            .where(visible)
            .where(matchesFilter(template.filter, query.orderField))
            .where(condition)
            .orderBy(orderBy)
            .limit(limit),
      ).$if(width.commentCount, (qb) => qb.select(commentCount)),
    );
  },
);

/** Columns a folded page sends as text, so they read exactly as in a row: int8 and timestamps. */
const textInJson = new Set(['id', 'author_id', 'created_at', 'updated_at', 'published_at']);

/**
 * The names of a post list row's columns for a width and order (listColumns), in the order a
 * folded page sends them.
 */
const foldedColumns = (width: PostWidth, orderField: PostOrderField) => [
  ...listColumns(width, orderField).map((column) => column.slice('posts.'.length)),
  ...(width.commentCount ? ['comment_count'] : []),
];

const usersWithPostPagesQuery = compiledVariants(
  ({ query, width, batch }: { query: PostListQuery; width: PostWidth; batch: Batch }) =>
    listKey(query, width, `user-fold:${batch}`),
  (
    db: Db,
    { query, width, batch },
    p: Params<FilterParams & PageParams & { ids: readonly string[] }>,
  ) => {
    const template = filterTemplate(query, p);
    const shape = pageShape(query.page);
    const { condition, orderBy, limit } = keysetClausesOf(query.order, shape, p);
    const page = visibleWalks(
      db,
      template,
      shape,
      p,
      listColumns(width, query.orderField),
      (visible, columns) =>
        db
          .selectFrom('posts')
          .select(columns)
          .where('posts.author_id', '=', sql.ref<string>('users.id'))
          .where(visible)
          .where(matchesFilter(template.filter, query.orderField))
          .where(condition)
          .orderBy(orderBy)
          .limit(limit),
    ).$if(width.commentCount, (qb) => qb.select(commentCount));
    const values = sql.join(
      foldedColumns(width, query.orderField).map((name) =>
        name === 'comment_count' || textInJson.has(name)
          ? sql`${sql.ref(`posts.${name}`)}::text`
          : sql.ref(`posts.${name}`),
      ),
    );
    // Arrays rather than objects: no key names per row to build in Postgres and parse here
    // (bench/probe-fold.ts). The page's own alias is `posts`, so the order reads its columns.
    return db
      .selectFrom('users')
      .selectAll('users')
      .select(
        sql<
          unknown[][]
        >`(select coalesce(json_agg(json_build_array(${values}) order by ${orderBy}), '[]') from (${page}) as posts)`.as(
          'post_page',
        ),
      )
      .where('users.id', '=', idIn(p.ids, batch));
  },
);

/**
 * Users by id, each with one page of the posts they wrote that the query lets its viewer see, in
 * one statement: the page `listPostsByParents` would return for them with the same width (rows
 * in its order, with `parent_id` and the columns `width` names; its authors are not joined), so a
 * profile is one statement where the user and the page were two.
 */
export async function usersWithPostPages(
  db: Db,
  ids: readonly string[],
  query: PostListQuery,
  width: PostWidth,
): Promise<{ user: UserRow; posts: (PostListRow & { parent_id: string })[] }[]> {
  const rows = await usersWithPostPagesQuery(
    db,
    { query, width, batch: batchOf(ids) },
    { ...filterParams(query), ...pageParams(query.page), ids },
  );
  const names = foldedColumns(width, query.orderField);
  return rows.map(({ post_page, ...user }) => ({
    user,
    posts: post_page.map((values) => {
      const row: Record<string, unknown> = { parent_id: user.id };
      names.forEach((name, index) => {
        row[name] = values[index];
      });
      return row as PostListRow & { parent_id: string };
    }),
  }));
}

/** First page of posts for many authors or tags, in one statement. */
export async function listPostsByParents(
  db: Db,
  parent: 'author' | 'tag',
  parentIds: readonly string[],
  query: PostListQuery,
  width: PostWidth,
): Promise<(PostListRow & { parent_id: string })[]> {
  return postsByParentsQuery(
    db,
    { parent, query, width, batch: batchOf(parentIds) },
    { ...filterParams(query), ...pageParams(query.page), parentIds },
  );
}

const countByParentsQuery = compiledVariants(
  ({
    parent,
    query,
    batch,
  }: {
    parent: 'author' | 'tag';
    query: PostFilterQuery;
    batch: Batch;
  }) => {
    const key = filterKey(query);
    return key && `${parent}:${batch}:${key}`;
  },
  (
    db: Db,
    { parent, query, batch },
    p: Params<FilterParams & { parentIds: readonly string[] }>,
  ) => {
    const template = filterTemplate(query, p);
    return parent === 'author'
      ? db
          .selectFrom('posts')
          .select(['posts.author_id as parent_id', (eb) => eb.fn.countAll<string>().as('count')])
          .where('posts.author_id', '=', idIn(p.parentIds, batch))
          .where(visiblePosts(template.viewer))
          .where(matchesFilter(template.filter, query.orderField))
          .groupBy('posts.author_id')
      : db
          .selectFrom('posts')
          .innerJoin('post_tags', 'post_tags.post_id', 'posts.id')
          .select(['post_tags.tag_id as parent_id', (eb) => eb.fn.countAll<string>().as('count')])
          .where('post_tags.tag_id', '=', idIn(p.parentIds, batch))
          .where(visiblePosts(template.viewer))
          .where(matchesFilter(template.filter, query.orderField))
          .groupBy('post_tags.tag_id');
  },
);

export async function countPostsByParents(
  db: Db,
  parent: 'author' | 'tag',
  parentIds: readonly string[],
  query: PostFilterQuery,
): Promise<Map<string, number>> {
  const rows = await countByParentsQuery(
    db,
    { parent, query, batch: batchOf(parentIds) },
    { ...filterParams(query), parentIds },
  );
  return new Map(rows.map((row) => [row.parent_id, Number(row.count)]));
}

/**
 * ts_rank of the query's positive part. A negated word (`-server`) only excludes: ts_rank scores
 * an AND by the distances between its words in the post, a negated word is in no match, so
 * `'graphql' & !'server'` scored every post the same floor (1e-20) and results came in id order.
 * querytree() gives that part (the query without its negations, what an index can search); a
 * query of negations only has none (`T`) and ranks every match 0.
 */
function rankExpression(text: string) {
  const positive = sql<string>`querytree(websearch_to_tsquery('english', ${text}))`;
  return sql<number>`case ${positive} when 'T' then 0 else ts_rank(posts.search, ${positive}::tsquery) end`;
}

/** Search cursors carry a digest of the query text, so they are refused for another query. */
export function searchOrder(text: string): KeysetOrder {
  return {
    name: `search:${createHash('sha256').update(text).digest('base64url').slice(0, 12)}`,
    expression: rankExpression(text),
    kind: 'real',
    direction: 'desc',
    idColumn: 'posts.id',
  };
}

/**
 * Search ranks at most this many matches, the newest ones, and totalCount counts them. ts_rank
 * reads the tsvector of every row it scores ("Ranking can be expensive since it requires
 * consulting the tsvector of each matching document": PostgreSQL manual, 12.3.3), so ranking
 * every match of a broad term over 100,000 posts took ~200 ms a page (bench/analysis.md, "Search
 * on real text, bounded"). Finding the newest K matches costs whichever the planner finds cheaper:
 * walking the posts newest first and testing each one's tsvector (K ÷ the share of posts that
 * match: rows read) or reading every match from the GIN index and keeping the newest K (one heap
 * visit per match). The cheaper of the two is dearest where both cost the same, about
 * √(K × posts) rows, so K sets the worst case. At 100,000 posts and K = 1,000 that is near 7,000
 * matches: `server` (4,873 published) walked 20,391 rows in 27–37 ms of Postgres (EXPLAIN
 * ANALYZE); at K = 200 it walks 4,151 in 6–8 ms, and a request's p50 single-client fell from 56
 * to 12 ms, every breadth under 15 ms (bench/probe-search.ts; figures and commands in
 * bench/analysis.md, "Search on real text, bounded"). 200 is ten pages of twenty: a term that
 * broad is narrowed by adding a word.
 */
export const SEARCH_CANDIDATES = 200;

/** Ids of the newest SEARCH_CANDIDATES visible posts that match: what search ranks and counts. */
function searchCandidates(db: Db, viewer: Viewer | null, text: string) {
  const walk = (visible: ReturnType<typeof visiblePosts>, columns: PostListColumn[] = []) =>
    db
      .selectFrom('posts')
      .select(['posts.id', ...columns])
      .where(visible)
      .where(sql<boolean>`posts.search @@ websearch_to_tsquery('english', ${text})`)
      .orderBy('posts.created_at', 'desc')
      .orderBy('posts.id', 'desc')
      .limit(SEARCH_CANDIDATES);
  if (viewerShape(viewer) !== 'member') return walk(visiblePosts(viewer));
  // As mergesWalks: a member's newest matches are the newest of the published ones and of their
  // own others, each found as an anonymous reader's are (one walk stepped over every newer post
  // hidden from them: 23,000 newer drafts, 22 ms and 12,171 buffers against 0.6 for the merge).
  const order: PostListColumn[] = ['posts.created_at'];
  const merged = sql<PostRow>`((${walk(published, order)}) union all (${walk(ownUnpublished(viewer!), order)}))`;
  return (db as unknown as Kysely<{ posts: PostRow }>)
    .selectFrom(merged.as('posts'))
    .select('posts.id')
    .orderBy('posts.created_at', 'desc')
    .orderBy('posts.id', 'desc')
    .limit(SEARCH_CANDIDATES) as unknown as ReturnType<typeof walk>;
}

/** A search result row; `candidate_count` (what countSearchResults gives) when it was asked. */
export type SearchRow = PostListRow & { rank: number; candidate_count?: string | null };

/**
 * Ranked full-text search among the candidates, keyset-paged on (rank, id). With `count`, every
 * row also carries the candidates' count: the candidates are found once for page and count.
 */
export async function searchPosts(
  db: Db,
  viewer: Viewer | null,
  text: string,
  page: PageRequest,
  width: { wide: boolean; count: boolean },
): Promise<SearchRow[]> {
  const { condition, orderBy, limit } = keysetClauses(searchOrder(text), page);
  const ranked = db
    .with('candidates', (cte) => searchCandidates(cte as Db, viewer, text))
    .selectFrom('posts')
    .innerJoin('candidates', 'candidates.id', 'posts.id')
    .select(width.wide ? postColumns : narrowPostColumns)
    .select(rankExpression(text).as('rank'))
    .where(condition)
    .orderBy(orderBy)
    .limit(limit);
  return width.count
    ? ranked
        .select((eb) =>
          eb
            .selectFrom('candidates')
            .select(eb.fn.countAll<string>().as('count'))
            .as('candidate_count'),
        )
        .execute()
    : ranked.execute();
}

/** How many posts search pages through: the matches, at most SEARCH_CANDIDATES. */
export async function countSearchResults(
  db: Db,
  viewer: Viewer | null,
  text: string,
): Promise<number> {
  const { count } = await db
    .selectFrom(searchCandidates(db, viewer, text).as('candidates'))
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(count);
}

const postsByIdsQuery = compiledBatch((db, batch, p: Params<{ ids: readonly string[] }>) =>
  db.selectFrom('posts').select(postColumns).where('posts.id', '=', idIn(p.ids, batch)),
);

export async function postsByIds(db: Db, ids: readonly string[]): Promise<PostRow[]> {
  return postsByIdsQuery(db, batchOf(ids), { ids });
}

const postsWithAuthorsQuery = compiledBatch((db, batch, p: Params<{ ids: readonly string[] }>) =>
  db
    .selectFrom('posts')
    .innerJoin('users', 'users.id', 'posts.author_id')
    .select(postColumns)
    .select(authorColumns)
    .where('posts.id', '=', idIn(p.ids, batch)),
);

/** Posts by id with their authors' columns: `post(id)` then `author` is one statement. */
export async function postsWithAuthorsByIds(
  db: Db,
  ids: readonly string[],
): Promise<WithAuthor<PostRow>[]> {
  return postsWithAuthorsQuery(db, batchOf(ids), { ids });
}

export async function postBySlug(db: Db, slug: string): Promise<PostRow | undefined> {
  return db
    .selectFrom('posts')
    .select(postColumns)
    .where('posts.slug', '=', slug)
    .executeTakeFirst();
}

export async function updatePostRow(
  db: Db,
  id: string,
  changes: PostUpdate,
): Promise<PostRow | undefined> {
  return db
    .updateTable('posts')
    .set({ ...changes, updated_at: sql<string>`now()` })
    .where('posts.id', '=', id)
    .returning(postColumns)
    .executeTakeFirst();
}

export async function deletePostRow(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('posts').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Locks the row so concurrent edits of one post serialize. */
export async function lockPost(db: Db, id: string): Promise<PostRow | undefined> {
  return db
    .selectFrom('posts')
    .select(postColumns)
    .where('posts.id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export async function countPostsByStatus(
  db: Db,
  viewer: Viewer | null,
): Promise<{ status: PostStatus; count: number }[]> {
  const rows = await db
    .selectFrom('posts')
    .select(['posts.status', (eb) => eb.fn.countAll<string>().as('count')])
    .where(visiblePosts(viewer))
    .groupBy('posts.status')
    .orderBy('posts.status')
    .execute();
  return rows.map((row) => ({ status: row.status, count: Number(row.count) }));
}

/** The insert of insertPostWithTags, compiled once: its values are all parameters. */
const insertPostWithTagsQuery = compiledVariants(
  () => 'insert',
  (
    db,
    _variant: null,
    p: Params<{
      authorId: string;
      title: string;
      slug: string;
      body: string;
      status: PostStatus;
      publishedAt: string | null;
      tags: readonly string[];
    }>,
  ): Compilable<PostRow> => {
    const columns = sql.join(postColumns.map((column) => sql.ref(column)));
    const statement = sql<PostRow>`
      with post as (
        insert into posts (author_id, title, slug, body, status, published_at)
        values (${p.authorId}, ${p.title}, ${p.slug}, ${p.body}, ${p.status},
          ${p.publishedAt}::timestamptz)
        returning ${columns}
      ), tag as (
        insert into tags (name) select unnest(${p.tags}::text[])
        on conflict (name) do update set name = excluded.name
        returning id
      ), link as (
        insert into post_tags (post_id, tag_id) select post.id, tag.id from post, tag
      )
      select * from post
    `;
    return { compile: () => statement.compile(db) };
  },
);

/**
 * One post with its tags in one statement, so atomic without a transaction (one round trip where
 * BEGIN, insert, tags, links and COMMIT took five). Tags are upserted in name order (no deadlock
 * between writers sharing tags); `do update` rather than `do nothing` returns a tag another
 * writer committed after this statement's snapshot, which `do nothing` would skip.
 */
export async function insertPostWithTags(
  db: Db,
  post: NewPost,
  tagNames: readonly string[],
): Promise<PostRow> {
  const rows = await insertPostWithTagsQuery(db, null, {
    authorId: post.author_id,
    title: post.title,
    slug: post.slug,
    body: post.body,
    status: post.status ?? 'DRAFT',
    publishedAt: post.published_at ?? null,
    tags: [...tagNames].sort(),
  });
  return rows[0]!;
}
