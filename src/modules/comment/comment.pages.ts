import {
  type FieldNode,
  type GraphQLObjectType,
  type GraphQLResolveInfo,
  getArgumentValues,
  getNamedType,
} from 'graphql';
import { collectSubfields } from 'graphql/execution/collectFields.js';
import { batchable, type Context, entityCache } from '../../context.ts';
import { requestLoader } from '../../db/batch.ts';
import {
  type ConnectionArgs,
  fieldsSelectedAt,
  fieldsSelectedBelow,
  type Page,
  type PageRequest,
  pageLimits,
  parsePageArgs,
  perDocument,
  toParentPages,
} from '../../db/keyset.ts';
import type { CommentRow, PostRow } from '../../db/tables.ts';
import { canSeePost } from '../post/post.policy.ts';
import { withoutAuthor } from '../user/user.repository.ts';
import { primeAuthors } from '../user/user.schema.ts';
import {
  commentOrder,
  commentPagesByPosts,
  countCommentsByPosts,
  type FoldedAuthorWidth,
  postsWithCommentPages,
} from './comment.repository.ts';

/** What `Post.comments` resolves to: one Relay page of a post's comments and its count. */
export type CommentPage = Page<CommentRow> & { totalCount: () => Promise<number> };

export const commentKey = (comment: CommentRow) => ({ value: comment.created_at, id: comment.id });

/** One Relay page per post from rows of all of them; `totalCount` counts them all at once. */
const toCommentPages = (
  ctx: Context,
  postIds: readonly string[],
  rows: readonly CommentRow[],
  page: PageRequest,
): CommentPage[] =>
  toParentPages(
    postIds,
    rows,
    (comment) => comment.post_id,
    page,
    commentOrder,
    commentKey,
    () => countCommentsByPosts(ctx.db, postIds),
  );

/** One page of comments per post, all posts in one LATERAL statement (none for a bare count). */
const loadCommentPages = batchable(
  async (postIds: string[], ctx: Context, args: ConnectionArgs, withPage: boolean) => {
    const page = parsePageArgs(args, commentOrder, pageLimits(ctx.config));
    return toCommentPages(
      ctx,
      postIds,
      withPage ? await commentPagesByPosts(ctx.db, postIds, page) : [],
      page,
    );
  },
);

/**
 * The request's loader of comment pages by post id for these arguments, with or without the page
 * (a bare `totalCount` runs the count alone). Its key names the arguments field by field, so the
 * fold below primes the entry `Post.comments` reads whatever order or nulls the arguments have.
 * `refetch` names the loader of pages loaded again because the primed one lacks author columns.
 */
const commentPagesLoader = (
  ctx: Context,
  args: ConnectionArgs,
  withPage: boolean,
  refetch = false,
) =>
  requestLoader(ctx, `post.comments:${argsKey(args)}:${withPage}${refetch ? ':all' : ''}`, (ids) =>
    loadCommentPages(ids, ctx, args, withPage),
  );

/** Pages a fold fetched with their authors' names alone (`FoldedAuthorWidth` 'name'). */
const pagesWithAuthorNames = new WeakSet<CommentPage>();

/** The author columns the comments' `author` fields read, by the fields selected there. */
const authorWidthOf = (fields: ReadonlySet<string>): FoldedAuthorWidth =>
  [...fields].every((field) => field === 'name' || field === 'id' || field === '__typename')
    ? 'name'
    : 'all';

/**
 * `Post.comments`: the post's comment page for these arguments, with or without the page. A page
 * a fold primed with its authors' names alone serves a selection that reads no other author
 * field; another selection of the same page in the document (an alias the fold did not see,
 * under a comment's `post`) loads it again with every author column.
 */
export function loadCommentPage(
  ctx: Context,
  info: GraphQLResolveInfo,
  args: ConnectionArgs,
  withPage: boolean,
  postId: string,
): Promise<CommentPage> {
  const page = commentPagesLoader(ctx, args, withPage).load(postId);
  if (!withPage || authorWidthOf(fieldsSelectedAt(info, ['edges', 'node', 'author'])) === 'name') {
    return page;
  }
  return page.then((loaded) =>
    pagesWithAuthorNames.has(loaded)
      ? commentPagesLoader(ctx, args, withPage, true).load(postId)
      : loaded,
  );
}

const argsKey = (args: ConnectionArgs) =>
  `${args.first ?? ''}:${args.after ?? ''}:${args.last ?? ''}:${args.before ?? ''}`;

/** What a fold of a post's comment page fetches: the page's arguments, its authors' columns. */
export interface FoldedCommentPage {
  args: ConnectionArgs;
  authors: FoldedAuthorWidth;
}

/** The Post type: what `post(id:)` answers, and what `node(id:)` answers for a Post's id. */
const postType = (info: GraphQLResolveInfo) => info.schema.getType('Post') as GraphQLObjectType;

/**
 * Looks ahead from a field answering a Post (`post(id:)`, or `node(id:)` given a Post's id: its
 * selection on Post, through fragments on Post or Node) into its selection: the arguments of
 * its `comments` page when every alias of `comments` there asks for the same page and one of
 * them selects `edges` or `pageInfo`, and the author columns all of them read; null otherwise
 * (nothing to fold, or arguments the fold cannot share, or invalid ones: the unfolded path then
 * answers and reports them as before).
 */
export function foldableCommentPage(
  ctx: Context,
  info: GraphQLResolveInfo,
): FoldedCommentPage | null {
  const below = perDocument(commentNodes, info, commentNodesBelow);
  if (!below) return null;
  const { nodes, authors } = below;
  const field = postType(info).getFields().comments!;
  let found: { args: ConnectionArgs; key: string } | null = null;
  for (const node of nodes) {
    let args: ConnectionArgs;
    try {
      args = getArgumentValues(field, node, info.variableValues) as ConnectionArgs;
      parsePageArgs(args, commentOrder, pageLimits(ctx.config));
    } catch {
      return null;
    }
    const key = argsKey(args);
    if (found && found.key !== key) return null;
    found = { args, key };
  }
  return found ? { args: found.args, authors } : null;
}

/** The `comments` selected below a Post field, and what their comments' authors read. */
interface CommentNodes {
  nodes: FieldNode[];
  authors: FoldedAuthorWidth;
}

const commentNodes = new WeakMap<FieldNode, CommentNodes | false>();

/**
 * One field node per alias of `comments` selected on the Post the field answers, when one of
 * them selects a page (`edges` or `pageInfo`), with the author columns their comments' `author`
 * fields read, all aliases together; false when none selects a page.
 */
function commentNodesBelow(info: GraphQLResolveInfo): CommentNodes | false {
  const post = postType(info);
  const fields = collectSubfields(
    info.schema,
    info.fragments,
    info.variableValues,
    post,
    info.fieldNodes,
  );
  const aliases = [...fields.values()].filter((aliased) => aliased[0]!.name.value === 'comments');
  if (aliases.length === 0) return false;
  const every = aliases.flat();
  const connection = getNamedType(post.getFields().comments!.type);
  const below = fieldsSelectedBelow(info, connection, every, []);
  if (!below.has('edges') && !below.has('pageInfo')) return false;
  const authors = authorWidthOf(
    fieldsSelectedBelow(info, connection, every, ['edges', 'node', 'author']),
  );
  return { nodes: aliases.map((aliased) => aliased[0]!), authors };
}

/**
 * Posts by id as the Post loader answers them (null when missing or not visible), each with the
 * comment page `args` asks for fetched in the same statement and primed into the loader
 * `Post.comments` reads (`commentPagesLoader`), so the page costs no statement of its own. Posts
 * the entity cache holds are not fetched: their comment pages load unfolded, as before.
 */
const loadPostsWithCommentPages = async (
  ids: string[],
  ctx: Context,
  { args, authors }: FoldedCommentPage,
  primePost: (id: string, post: PostRow) => void,
): Promise<(PostRow | null)[]> => {
  const page = parsePageArgs(args, commentOrder, pageLimits(ctx.config));
  const folded = new Map<string, CommentRow[]>();
  const rows = await ctx.deps.cache.rowsByIds(
    'post',
    ids,
    async (missing) => {
      const fetched = await postsWithCommentPages(ctx.db, missing, page, authors);
      const visible = fetched.filter(({ post }) => canSeePost(ctx.viewer, post));
      primeAuthors(
        ctx,
        visible.map(({ post }) => post),
      );
      for (const { post, comments } of visible) folded.set(post.id, comments);
      return fetched.map(({ post }) => withoutAuthor(post));
    },
    entityCache(ctx),
  );
  if (folded.size > 0) {
    const postIds = [...folded.keys()];
    const pages = toCommentPages(ctx, postIds, [...folded.values()].flat(), page);
    const loader = commentPagesLoader(ctx, args, true);
    postIds.forEach((id, index) => {
      if (authors === 'name') {
        pagesWithAuthorNames.add(pages[index]!);
        loader.prime(id, pages[index]!);
      } else {
        // Replaces a page another fold of the same post primed with names alone (`post(id:)` and
        // `node(id:)` in one document), so a wider selection never loads it again.
        loader.clear(id).prime(id, pages[index]!);
      }
    });
  }
  return ids.map((id, index) => {
    const post = rows[index];
    const answer = post && canSeePost(ctx.viewer, post) ? post : null;
    if (answer) primePost(id, answer);
    return answer;
  });
};

/**
 * The request's loader of posts by id folding in the comment page `fold` asks for. `primePost`
 * hands each answer to the Post loader, so the same post met again (a comment's `post`) costs
 * no statement, as it would not have unfolded.
 */
export const postsWithCommentPagesLoader = (
  ctx: Context,
  fold: FoldedCommentPage,
  primePost: (id: string, post: PostRow) => void,
) =>
  requestLoader(ctx, `post:with-comments:${argsKey(fold.args)}:${fold.authors}`, (ids) =>
    loadPostsWithCommentPages(ids, ctx, fold, primePost),
  );
