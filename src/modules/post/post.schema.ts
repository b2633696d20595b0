import { brandWithType } from '@pothos/core';
import {
  type FieldNode,
  type GraphQLObjectType,
  type GraphQLResolveInfo,
  getArgumentValues,
  getNamedType,
  isObjectType,
} from 'graphql';
import { collectSubfields } from 'graphql/execution/collectFields.js';
import { builder } from '../../builder.ts';
import { batchable, type Context, computedCache, entityCache } from '../../context.ts';
import { groupByKey, requestLoader } from '../../db/batch.ts';
import {
  type ConnectionArgs,
  type ConnectionSelection,
  connectionSelection,
  connectionSelectionOf,
  fieldsSelectedAt,
  fieldsSelectedBelow,
  pageLimits,
  parsePageArgs,
  perDocument,
  type SelectedAt,
  toPage,
  toParentPages,
} from '../../db/keyset.ts';
import type { PostRow, PostStatus as PostStatusValue } from '../../db/tables.ts';
import { badInput, mutationErrors, notFound } from '../../errors.ts';
import {
  type FoldedCommentPage,
  foldableCommentPage,
  postsWithCommentPagesLoader,
} from '../comment/comment.pages.ts';
import { foldNode } from '../node/node.schema.ts';
import { tagsByPostIds } from '../tag/tag.repository.ts';
import { TagNode } from '../tag/tag.schema.ts';
import { withoutAuthor } from '../user/user.repository.ts';
import { authorColumnsFor, authorOrId, primeAuthors, UserNode } from '../user/user.schema.ts';
import { ALL_POSTS_TAG, visibilityScope } from './post.cache.ts';
import { canSeePost } from './post.policy.ts';
import {
  countPosts,
  countPostsByParents,
  countPostsByStatus,
  countSearchResults,
  listPosts,
  listPostsByParents,
  narrowPostColumns,
  type PostFilter as PostFilterValue,
  type PostListColumn,
  type PostListQuery,
  type PostListRow,
  type PostOrderField as PostOrderFieldValue,
  type PostWidth,
  postBySlug,
  postOrder,
  postSortKey,
  postsByIds,
  postsWithAuthorsByIds,
  postWidth,
  SEARCH_CANDIDATES,
  type SortDirection as SortDirectionValue,
  searchOrder,
  searchPosts,
  usersWithPostPages,
  type WidePostColumn,
} from './post.repository.ts';
import { createPost, deletePost, importPosts, setPostTags, updatePost } from './post.service.ts';

export const PostStatus = builder.enumType('PostStatus', {
  description: 'Where a post is in its life: written, queued for the pipeline, reviewed, live.',
  values: {
    DRAFT: { description: 'Being written; visible to its author, editors and admins only.' },
    QUEUED: { description: 'Waiting for a pipeline run to start.' },
    PROCESSING: { description: 'A pipeline run is working on it.' },
    REVIEW: { description: 'Processed, waiting for an editor to publish it.' },
    PUBLISHED: { description: 'Live: visible to everyone, anonymous readers included.' },
    FAILED: { description: 'Its last pipeline run failed.' },
    ARCHIVED: { description: 'Withdrawn; visible to its author, editors and admins only.' },
  } as const,
});

/** Post fields that read a wide column: a search selecting one of them fetches the wide columns. */
const wideFields = new Set(['body', 'summary', 'metaDescription', 'keywords']);

/** The columns each Post field reads from a listed row (the id is always selected). */
const columnsOfField = new Map<string, readonly PostListColumn[]>([
  ['id', []],
  ['__typename', []],
  ['title', ['posts.title']],
  ['slug', ['posts.slug']],
  ['status', ['posts.status']],
  ['wordCount', ['posts.word_count']],
  ['readingMinutes', ['posts.reading_minutes']],
  ['readabilityScore', ['posts.readability_score']],
  ['seoScore', ['posts.seo_score']],
  ['createdAt', ['posts.created_at']],
  ['updatedAt', ['posts.updated_at']],
  ['publishedAt', ['posts.published_at']],
  ['body', ['posts.body']],
  ['summary', ['posts.summary']],
  ['metaDescription', ['posts.meta_description']],
  ['keywords', ['posts.keywords']],
  ['author', ['posts.author_id']],
  // These read the id (and `comment_count`) only.
  ['tags', []],
  ['comments', []],
  ['pipelineRuns', []],
  ['latestRun', []],
]);

/** Widths by the set of node fields they were computed from, with and without the author. */
const widths = [
  new WeakMap<ReadonlySet<string>, PostWidth>(),
  new WeakMap<ReadonlySet<string>, PostWidth>(),
];

/**
 * The columns a post list selects for the fields selected on its nodes: those they read (every
 * narrow column for a field not named above; a wide one it lacks is loaded apart), with the
 * author's (`joinAuthor`) when `author` is selected. `comments { totalCount }` (under any alias)
 * is counted in the list's own statement, which Post.comments then answers. `selectedAt` reads
 * below the connection field, so a resolver and a look-ahead that folds its page (User.posts)
 * compute one width, and the folded page is the entry the resolver reads. Kept per selection: a
 * document without `@skip`/`@include` hands over the same set on every request (keyset.ts).
 */
function listWidth(
  selection: ConnectionSelection,
  selectedAt: SelectedAt,
  joinAuthor: boolean,
): PostWidth {
  const cache = widths[joinAuthor ? 1 : 0]!;
  let width = cache.get(selection.nodeFields);
  if (!width) {
    const columns: PostListColumn[] = [];
    for (const field of selection.nodeFields) {
      columns.push(...(columnsOfField.get(field) ?? narrowPostColumns));
    }
    width = postWidth(
      columns,
      joinAuthor && selection.nodeFields.has('author')
        ? authorColumnsFor(selectedAt(['edges', 'node', 'author']))
        : null,
      selection.nodeFields.has('comments') &&
        selectedAt(['edges', 'node', 'comments']).has('totalCount'),
    );
    cache.set(selection.nodeFields, width);
  }
  return width;
}

/** Names selected below the field being resolved (fieldsSelectedAt) as a SelectedAt. */
const selectedBelowField =
  (info: GraphQLResolveInfo): SelectedAt =>
  (path) =>
    fieldsSelectedAt(info, path);

/**
 * A wide column of a post: from the row when its list fetched it, else from the full row (a
 * request-wide loader over the entity cache). Full rows are loaded apart from the narrow ones,
 * so a narrow row is never served where a wide column is read.
 */
async function wideColumn<Column extends WidePostColumn>(
  ctx: Context,
  post: PostListRow,
  column: Column,
): Promise<PostRow[Column]> {
  const own = post[column];
  if (own !== undefined) return own as PostRow[Column];
  const full = await requestLoader(ctx, 'post:full', (ids) =>
    ctx.deps.cache.rowsByIds(
      'post',
      ids,
      (missing) => postsByIds(ctx.db, missing),
      entityCache(ctx),
    ),
  ).load(post.id);
  // Only when the post was deleted between its list statement and this one.
  if (!full) throw notFound('Post');
  return full[column];
}

export const PostNode = builder.loadableNode('Post', {
  description: 'An article. Anonymous readers see PUBLISHED posts; authors also see their own.',
  id: { resolve: (post: PostListRow) => post.id },
  load: batchable(async (ids: string[], ctx) => {
    const rows = await ctx.deps.cache.rowsByIds(
      'post',
      ids,
      async (missing) => {
        const fetched = await postsWithAuthorsByIds(ctx.db, missing);
        primeAuthors(
          ctx,
          fetched.filter((post) => canSeePost(ctx.viewer, post)),
        );
        return fetched.map(withoutAuthor);
      },
      entityCache(ctx),
    );
    return rows.map((post) => (post && canSeePost(ctx.viewer, post) ? post : null));
  }),
  fields: (t) => ({
    title: t.exposeString('title', { description: '1–200 characters.' }),
    slug: t.exposeString('slug', { description: 'URL-safe unique name.' }),
    body: t.string({
      description: 'Markdown source.',
      resolve: (post, _args, ctx) => wideColumn(ctx, post, 'body'),
    }),
    summary: t.string({
      nullable: true,
      description: 'Set by the pipeline.',
      resolve: (post, _args, ctx) => wideColumn(ctx, post, 'summary'),
    }),
    metaDescription: t.string({
      nullable: true,
      description:
        'Up to 160 characters for search results, set by the pipeline’s seo step; null before it ran.',
      resolve: (post, _args, ctx) => wideColumn(ctx, post, 'meta_description'),
    }),
    keywords: t.stringList({
      description: 'Set by the pipeline (TF-IDF).',
      resolve: (post, _args, ctx) => wideColumn(ctx, post, 'keywords'),
    }),
    status: t.expose('status', { type: PostStatus, description: 'Where the post is in its life.' }),
    wordCount: t.exposeInt('word_count', {
      description:
        'Words of prose in the body (code, HTML and markup excluded), from the last pipeline run; 0 before one.',
    }),
    readingMinutes: t.exposeInt('reading_minutes', {
      description:
        'Reading time in whole minutes at 200 words a minute, rounded up; 0 before a run.',
    }),
    readabilityScore: t.exposeFloat('readability_score', {
      nullable: true,
      description: 'Flesch reading ease; higher reads easier.',
    }),
    seoScore: t.exposeInt('seo_score', { nullable: true, description: '0–100.' }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was created.' }),
    updatedAt: t.expose('updated_at', {
      type: 'DateTime',
      description: 'When it, or a pipeline step’s result on it, last changed.',
    }),
    publishedAt: t.expose('published_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When it was first published; null while never published.',
    }),
    author: t.field({
      type: UserNode,
      description: 'Who wrote it.',
      resolve: (post, _args, ctx) => authorOrId(ctx, post),
    }),
    tags: t.loadableList({
      type: TagNode,
      description:
        'At most 20, by name. Every tag of a post the viewer may see is visible to them.',
      load: batchable(async (postIds: string[], ctx) => {
        const found = await ctx.deps.cache.getOrLoad(
          postIds.map((id) => `post-tags:${id}`),
          {
            name: 'postTags',
            ...entityCache(ctx),
            tagsOf: (key) => [`post:${key.slice('post-tags:'.length)}`],
            load: async (keys) => {
              const ids = keys.map((key) => key.slice('post-tags:'.length));
              const groups = groupByKey(
                ids,
                await tagsByPostIds(ctx.db, ids),
                (tag) => tag.post_id,
              );
              return new Map(groups.map((tags, index) => [keys[index]!, tags]));
            },
          },
        );
        return postIds.map((id) => found.get(`post-tags:${id}`) ?? []);
      }),
      resolve: (post) => post.id,
    }),
  }),
});

const PostOrderField = builder.enumType('PostOrderField', {
  description: 'What a post list is sorted by; ties are broken by id, so pages never skip a post.',
  values: {
    CREATED_AT: { description: 'Creation time.' },
    UPDATED_AT: { description: 'Last change time.' },
    PUBLISHED_AT: { description: 'Lists only posts that have been published.' },
    TITLE: { description: 'Title, in code-point order (not locale-aware).' },
  },
});

const SortDirection = builder.enumType('SortDirection', {
  description: 'Sort direction.',
  values: {
    ASC: { description: 'Smallest, oldest or A first.' },
    DESC: { description: 'Largest, newest or Z first.' },
  } as const,
});

const PostOrder = builder.inputType('PostOrder', {
  description: 'How to sort a post list; newest created first when omitted.',
  fields: (t) => ({
    field: t.field({ type: PostOrderField, required: true, description: 'The sort key.' }),
    direction: t.field({
      type: SortDirection,
      required: true,
      defaultValue: 'DESC',
      description: 'Sort direction.',
    }),
  }),
});

const PostFilter = builder.inputType('PostFilter', {
  description: 'All given conditions must hold.',
  fields: (t) => ({
    status: t.field({
      type: PostStatus,
      description: 'Only posts in this status (among those the viewer may see).',
    }),
    authorId: t.globalID({ for: UserNode, description: 'Only this author’s posts.' }),
    tag: t.string({
      description:
        'Tag name. Only posts the viewer may see match, so a tag on hidden posts only answers ' +
        'as a name no post has: an empty page.',
    }),
    search: t.string({ description: 'Full-text query (web search syntax).' }),
  }),
});

export const PostConnection = builder.connectionObject({ type: PostNode, name: 'PostConnection' });

interface PostListArgs extends ConnectionArgs {
  filter?: {
    status?: PostFilterValue['status'];
    authorId?: { id: string } | null;
    tag?: string | null;
    search?: string | null;
  } | null;
  orderBy?: { field: PostOrderFieldValue; direction: SortDirectionValue } | null;
}

function postListQuery(ctx: Context, args: PostListArgs): PostListQuery {
  const orderField = args.orderBy?.field ?? 'CREATED_AT';
  const order = postOrder(orderField, args.orderBy?.direction ?? 'DESC');
  const search = args.filter?.search?.trim();
  if (search !== undefined && (search.length === 0 || search.length > 200)) {
    throw badInput('filter.search must be 1–200 characters', { argument: 'filter.search' });
  }
  return {
    viewer: ctx.viewer,
    filter: {
      status: args.filter?.status,
      authorId: args.filter?.authorId?.id,
      tag: args.filter?.tag,
      search,
    },
    orderField,
    order,
    page: parsePageArgs(args, order, pageLimits(ctx.config)),
  };
}

const postListArgs = (t: Parameters<Parameters<typeof builder.queryFields>[0]>[0]) => ({
  filter: t.arg({ type: PostFilter, description: 'Conditions every listed post meets.' }),
  orderBy: t.arg({
    type: PostOrder,
    description: 'Sort order; newest created first when omitted.',
  }),
});

builder.queryFields((t) => ({
  posts: t.connection(
    {
      type: PostNode,
      description: `Posts the viewer may see, keyset-paginated. With \`filter.search\`, \`totalCount\` counts at most ${SEARCH_CANDIDATES.toLocaleString('en')} matches (as \`searchPosts\` does: ${SEARCH_CANDIDATES.toLocaleString('en')} means at least as many); the pages still reach every match.`,
      args: postListArgs(t),
      resolve: async (_root, args, ctx, info) => {
        const query = postListQuery(ctx, args);
        const selection = connectionSelection(info);
        const width = listWidth(selection, selectedBelowField(info), true);
        // A selection of `totalCount` alone needs no page.
        const rows = selection.page ? await listPosts(ctx.db, query, width) : [];
        return {
          ...toPage(rows, query.page, query.order, postSortKey(query.orderField)),
          totalCount: () => countPosts(ctx.db, query),
        };
      },
    },
    PostConnection,
  ),
  post: t.field({
    type: PostNode,
    nullable: true,
    description: 'One post by global id or by slug (exactly one of them).',
    args: {
      id: t.arg.globalID({ for: PostNode, description: 'The post’s global ID.' }),
      slug: t.arg.string({ description: 'The post’s slug, as in its URL.' }),
    },
    resolve: async (_root, args, ctx, info) => {
      if ((args.id == null) === (args.slug == null)) {
        throw badInput('Pass exactly one of `id` and `slug`', { argument: 'id' });
      }
      if (args.id) {
        // The post page's comments come in the post's own statement when the selection allows.
        const comments =
          ctx.config.LOADER_BATCHING && ctx.config.QUERY_FOLDING
            ? foldableCommentPage(ctx, info)
            : null;
        return comments ? postWithCommentPage(ctx, comments, args.id.id) : args.id.id;
      }
      const post = await postBySlug(ctx.db, args.slug!);
      return post && canSeePost(ctx.viewer, post) ? post : null;
    },
  }),
  searchPosts: t.connection(
    {
      type: PostNode,
      description: `Full-text search over title, summary and body, best match first. Ranks the ${SEARCH_CANDIDATES.toLocaleString('en')} newest matching posts the viewer may see (finding and ranking read each one, so a broad term is bounded like this: add a word to narrow it); \`totalCount\` counts those, so ${SEARCH_CANDIDATES.toLocaleString('en')} means at least as many matches.`,
      args: {
        query: t.arg.string({
          required: true,
          description:
            'Words to find (web search syntax: quotes, OR, -word), 1–200 characters; BAD_USER_INPUT otherwise. A -word only excludes posts: the other words rank them (with negated words alone, every match ranks alike, highest id first). Rate-limited per caller (RATE_LIMITED).',
        }),
      },
      resolve: async (_root, args, ctx, info) => {
        const text = args.query.trim();
        if (text.length === 0 || text.length > 200) {
          throw badInput('query must be 1–200 characters', { argument: 'query' });
        }
        const order = searchOrder(text);
        const page = parsePageArgs(args, order, pageLimits(ctx.config));
        await ctx.deps.rateLimiter.consume(ctx.clientKey, 'searchPosts');
        const selection = connectionSelection(info);
        const wide = [...selection.nodeFields].some((field) => wideFields.has(field));
        // Page and count together find the candidates once (the count rides on each row).
        const count = selection.page && selection.count;
        // Width and count are in the key: a cached narrow page would cost a statement per wide field.
        const key = `search:${visibilityScope(ctx.viewer)}:${order.name}:${JSON.stringify(page)}:${wide ? 'wide' : 'narrow'}${count ? ':count' : ''}`;
        const rows = selection.page
          ? await cachedComputation(ctx, 'search', key, () =>
              searchPosts(ctx.db, ctx.viewer, text, page, { wide, count }),
            )
          : [];
        const counted = rows[0]?.candidate_count;
        return {
          ...toPage(rows, page, order, (row) => ({ value: row.rank, id: row.id })),
          totalCount: () =>
            counted != null
              ? Promise.resolve(Number(counted))
              : cachedComputation(
                  ctx,
                  'search',
                  `search-count:${visibilityScope(ctx.viewer)}:${order.name}`,
                  () => countSearchResults(ctx.db, ctx.viewer, text),
                ),
        };
      },
    },
    PostConnection,
  ),
}));

/** A computed value over posts, cached until any post changes (or its shorter TTL). */
const cachedComputation = <Value>(
  ctx: Context,
  name: string,
  key: string,
  compute: () => Promise<Value>,
) => ctx.deps.cache.value(name, key, [ALL_POSTS_TAG], compute, computedCache(ctx));

const StatusCount = builder
  .objectRef<{ status: PostStatusValue; count: number }>('PostStatusCount')
  .implement({
    description: 'How many visible posts are in one status.',
    fields: (t) => ({
      status: t.expose('status', { type: PostStatus, description: 'The status counted.' }),
      count: t.exposeInt('count', { description: 'Posts in it.' }),
    }),
  });

const PostStats = builder
  .objectRef<{ status: PostStatusValue; count: number }[]>('PostStats')
  .implement({
    description: 'Counts over the posts the viewer may see.',
    fields: (t) => ({
      total: t.int({
        description: 'All visible posts.',
        resolve: (counts) => counts.reduce((sum, entry) => sum + entry.count, 0),
      }),
      byStatus: t.field({
        type: [StatusCount],
        description: 'One count per status that has posts.',
        resolve: (counts) => counts,
      }),
    }),
  });

builder.queryField('postStats', (t) =>
  t.field({
    type: PostStats,
    description:
      'Post counts by status over what the viewer may see; cached until any post changes.',
    resolve: (_root, _args, ctx) =>
      cachedComputation(ctx, 'postStats', `post-stats:${visibilityScope(ctx.viewer)}`, () =>
        countPostsByStatus(ctx.db, ctx.viewer),
      ),
  }),
);

builder.objectField(UserNode, 'postCount', (t) =>
  t.loadable({
    type: 'Int',
    description: 'Posts by this user that the viewer may see.',
    load: async (userIds: string[], ctx) => {
      const scope = visibilityScope(ctx.viewer);
      const keyOf = (userId: string) => `user-post-count:${userId}:${scope}`;
      const found = await ctx.deps.cache.getOrLoad<number>(userIds.map(keyOf), {
        name: 'postCount',
        ...computedCache(ctx),
        tagsOf: (key) => [`user-posts:${key.split(':')[1]}`],
        load: async (keys) => {
          const ids = keys.map((key) => key.split(':')[1]!);
          const counts = await countPostsByParents(ctx.db, 'author', ids, {
            viewer: ctx.viewer,
            filter: {},
            orderField: 'CREATED_AT',
          });
          return new Map(ids.map((id) => [keyOf(id), counts.get(id) ?? 0]));
        },
      });
      return userIds.map((id) => found.get(keyOf(id)) ?? 0);
    },
    resolve: (user) => user.id,
  }),
);

/** One page per parent for `User.posts`/`Tag.posts`, all parents in one LATERAL statement. */
const loadParentPages = batchable(
  async (
    parentIds: string[],
    ctx: Context,
    parent: 'author' | 'tag',
    args: PostListArgs,
    page: boolean,
    width: PostWidth,
  ) => {
    const query = postListQuery(ctx, args);
    const rows = page ? await listPostsByParents(ctx.db, parent, parentIds, query, width) : [];
    return toParentPages(
      parentIds,
      rows,
      (row) => row.parent_id,
      query.page,
      query.order,
      postSortKey(query.orderField),
      () => countPostsByParents(ctx.db, parent, parentIds, query),
    );
  },
);

/** Authors are not joined: the user loader answers a tag's authors in one statement. */
const postsByParentJoinAuthor = false;

/**
 * What a `User.posts`/`Tag.posts` page is loaded by besides the parent: its arguments, whether
 * the page (not only the count) is selected, and the width of its rows (listWidth). The key names
 * the arguments field by field, so a fold primes the entry the field reads whatever order the
 * arguments come in.
 */
interface ParentPageRequest {
  args: PostListArgs;
  page: boolean;
  width: PostWidth;
  key: string;
}

/** A ParentPageRequest with its key. */
function parentPageRequest(args: PostListArgs, page: boolean, width: PostWidth): ParentPageRequest {
  const order = args.orderBy ? `${args.orderBy.field}:${args.orderBy.direction}` : '';
  const filter = args.filter ? JSON.stringify(args.filter) : '';
  return {
    args,
    page,
    width,
    key: `${args.first ?? ''}:${args.after ?? ''}:${args.last ?? ''}:${args.before ?? ''}:${order}:${filter}:${page}:${width.key}`,
  };
}

/** The request's loader of `User.posts`/`Tag.posts` pages by parent id for one request of them. */
const parentPagesLoader = (
  ctx: Context,
  parent: 'author' | 'tag',
  { args, page, width, key }: ParentPageRequest,
) =>
  requestLoader(ctx, `${parent}.posts:${key}`, (ids) =>
    loadParentPages(ids, ctx, parent, args, page, width),
  );

/**
 * Looks ahead from `node(id:)` into what it selects on a User: the request of its `posts` page
 * when every alias of `posts` asks for the same page (arguments and width), without a filter,
 * and one of them selects `edges` or `pageInfo`; null otherwise (the field then loads its page
 * itself, and reports invalid arguments as before).
 */
function foldablePostPage(ctx: Context, info: GraphQLResolveInfo): ParentPageRequest | null {
  const groups = perDocument(postPageSelections, info, postPagesSelected);
  const field = (info.schema.getType('User') as GraphQLObjectType).getFields().posts!;
  let found: ParentPageRequest | null = null;
  for (const { node, page, width } of groups) {
    let args: PostListArgs;
    try {
      args = getArgumentValues(field, node, info.variableValues) as PostListArgs;
      postListQuery(ctx, args);
    } catch {
      return null;
    }
    if (args.filter != null) return null;
    const request = parentPageRequest(args, page, width);
    if (found && found.key !== request.key) return null;
    found = request;
  }
  return found?.page ? found : null;
}

/** One alias of `posts` on a User: a field node of it and what its resolver will load. */
interface PostPageSelection {
  node: FieldNode;
  page: boolean;
  width: PostWidth;
}

const postPageSelections = new WeakMap<FieldNode, PostPageSelection[]>();

/**
 * Per alias of `posts` selected on a User below the field: a field node, whether it selects the
 * page, and the width `User.posts` will compute for it (listWidth, from the same field nodes the
 * executor will hand that resolver).
 */
function postPagesSelected(info: GraphQLResolveInfo): PostPageSelection[] {
  const user = info.schema.getType('User');
  if (!isObjectType(user)) return [];
  const connection = getNamedType(user.getFields().posts!.type);
  const fields = collectSubfields(
    info.schema,
    info.fragments,
    info.variableValues,
    user,
    info.fieldNodes,
  );
  return [...fields.values()]
    .filter((nodes) => nodes[0]!.name.value === 'posts')
    .map((nodes) => {
      const selectedAt: SelectedAt = (path) => fieldsSelectedBelow(info, connection, nodes, path);
      const selection = connectionSelectionOf(selectedAt);
      return {
        node: nodes[0]!,
        page: selection.page,
        width: listWidth(selection, selectedAt, postsByParentJoinAuthor),
      };
    });
}

/**
 * Users by id as the User loader answers them, each with the page of posts `args` and `width`
 * ask for fetched in the same statement and primed into the loader `User.posts` reads, so the
 * page costs no statement of its own. Users the entity cache holds are not fetched: their pages
 * load unfolded, as before.
 */
async function loadUsersWithPostPages(ids: string[], ctx: Context, request: ParentPageRequest) {
  const query = postListQuery(ctx, request.args);
  const folded = new Map<string, (PostListRow & { parent_id: string })[]>();
  const users = await ctx.deps.cache.rowsByIds(
    'user',
    ids,
    async (missing) => {
      const fetched = await usersWithPostPages(ctx.db, missing, query, request.width);
      for (const { user, posts } of fetched) folded.set(user.id, posts);
      return fetched.map(({ user }) => user);
    },
    entityCache(ctx),
  );
  if (folded.size > 0) {
    const userIds = [...folded.keys()];
    const pages = toParentPages(
      userIds,
      [...folded.values()].flat(),
      (row) => row.parent_id,
      query.page,
      query.order,
      postSortKey(query.orderField),
      () => countPostsByParents(ctx.db, 'author', userIds, query),
    );
    const loader = parentPagesLoader(ctx, 'author', request);
    userIds.forEach((id, index) => {
      loader.prime(id, pages[index]!);
    });
  }
  const loader = UserNode.getDataloader(ctx);
  for (const user of users) {
    if (!user) continue;
    loader.prime(user.id, user);
    // As resolveNodes brands what it loads: by name, so a row branded by both stays the same.
    brandWithType(user, 'User' as never);
  }
  return users;
}

/**
 * A post by id with the comment page `comments` asks for in the same statement (the post page):
 * what the Post loader answers (null when missing or hidden), primed into it.
 */
const postWithCommentPage = (ctx: Context, comments: FoldedCommentPage, id: string) =>
  postsWithCommentPagesLoader(ctx, comments, (postId, post) => {
    PostNode.getDataloader(ctx).prime(postId, post);
  }).load(id);

// `node(id:)` of a Post takes `post(id:)`'s path: one loader per comment page, so the same post
// asked both ways (or through aliases) is one statement, and a hidden post is null either way.
foldNode('Post', (ctx, info, id) => {
  const comments = foldableCommentPage(ctx, info);
  return (
    comments &&
    postWithCommentPage(ctx, comments, id).then((post) => {
      // As resolveNodes brands what it loads, so Node resolves the row as a Post.
      if (post) brandWithType(post, 'Post' as never);
      return post;
    })
  );
});

foldNode('User', (ctx, info, id) => {
  const fold = foldablePostPage(ctx, info);
  return (
    fold &&
    requestLoader(ctx, `user:with-posts:${fold.key}`, (ids) =>
      loadUsersWithPostPages(ids, ctx, fold),
    ).load(id)
  );
});

/**
 * `User.posts` and `Tag.posts`: one statement per list level whatever the parent count. Loads
 * batch by field, arguments and the selection's needs rather than by path, so aliased parents
 * (`a: node(id: …) { … on Tag { posts } }`, 30 times over) share one page and one count statement.
 */
function postsByParentField(parent: 'author' | 'tag') {
  return (t: Parameters<Parameters<typeof builder.objectFields<typeof UserNode>>[1]>[0]) =>
    t.field({
      type: PostConnection,
      description: `Posts of this ${parent === 'author' ? 'author' : 'tag'} that the viewer may see; \`totalCount\` counts the same posts.`,
      args: {
        ...t.arg.connectionArgs(),
        filter: t.arg({ type: PostFilter, description: 'Conditions every listed post meets.' }),
        orderBy: t.arg({
          type: PostOrder,
          description: 'Sort order; newest created first when omitted.',
        }),
      },
      resolve: (row: { id: string }, args, ctx, info) => {
        const selection = connectionSelection(info);
        const width = listWidth(selection, selectedBelowField(info), postsByParentJoinAuthor);
        const request = parentPageRequest(args, selection.page, width);
        return parentPagesLoader(ctx, parent, request).load(row.id);
      },
    });
}

builder.objectField(UserNode, 'posts', postsByParentField('author'));
builder.objectField(TagNode, 'posts', postsByParentField('tag') as never);

const { inputType: CreatePostInput } = builder.relayMutationField(
  'createPost',
  {
    description: 'A new post; BAD_USER_INPUT names the first invalid field, CONFLICT a taken slug.',
    inputFields: (t) => ({
      title: t.string({ required: true, description: '1–200 characters.' }),
      body: t.string({ required: true, description: 'Markdown, up to 200,000 characters.' }),
      slug: t.string({ description: 'Derived from the title when omitted.' }),
      status: t.field({ type: PostStatus, description: 'DRAFT (default) or PUBLISHED (editors).' }),
      tags: t.stringList({ description: 'Tag names; created when missing. At most 20.' }),
      author: t.string({
        description:
          'Who wrote it, when not the viewer (editors only, else FORBIDDEN): a name, an email or `Name <email>`. Matched to a user by email, else by name; created as an AUTHOR when missing.',
      }),
      createdAt: t.field({
        type: 'DateTime',
        description:
          'When it was written, for posts moved from elsewhere (editors only, else FORBIDDEN); also the publication time of a PUBLISHED post. Defaults to now.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Creates a post authored by the viewer (or, for editors, by \`input.author\`). Writers only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, CONFLICT (slug taken), RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({ post: await createPost(ctx, input) }),
  },
  {
    description: 'The post created.',
    outputFields: (t) => ({
      post: t.field({
        type: PostNode,
        description: 'The new post.',
        resolve: (payload) => payload.post,
      }),
    }),
  },
);

builder.relayMutationField(
  'updatePost',
  {
    description: 'The post and the fields to change; omitted fields stay as they are.',
    inputFields: (t) => ({
      id: t.globalID({
        for: PostNode,
        required: true,
        description: 'The post; NOT_FOUND when the viewer may not see it.',
      }),
      title: t.string({ description: '1–200 characters.' }),
      body: t.string({ description: 'Markdown, up to 200,000 characters.' }),
      slug: t.string({
        description:
          'Lowercase letters, digits and single dashes, up to 120 characters; CONFLICT when taken.',
      }),
      status: t.field({ type: PostStatus, description: 'PUBLISHED needs the EDITOR role.' }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Changes the given fields of a post; its author or an editor only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT (slug taken), RATE_LIMITED')}`,
    resolve: async (_root, { input: { id, ...changes } }, ctx) => ({
      post: await updatePost(ctx, id.id, changes),
    }),
  },
  {
    description: 'The post after the change.',
    outputFields: (t) => ({
      post: t.field({
        type: PostNode,
        description: 'The post as changed.',
        resolve: (payload) => payload.post,
      }),
    }),
  },
);

builder.relayMutationField(
  'deletePost',
  {
    description: 'The post to delete.',
    inputFields: (t) => ({
      id: t.globalID({
        for: PostNode,
        required: true,
        description:
          'The post; NOT_FOUND when not visible, FORBIDDEN unless the author or an editor.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Deletes a post with its comments, tag links and runs; its author or an editor only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED')}`,
    resolve: async (_root, { input: { id } }, ctx) => {
      await deletePost(ctx, id.id);
      return { deletedPostId: id.id };
    },
  },
  {
    description: 'Which post was deleted.',
    outputFields: (t) => ({
      deletedPostId: t.globalID({
        description: 'The global ID of the deleted post, to drop it from client caches.',
        resolve: (payload) => ({ type: 'Post', id: payload.deletedPostId }),
      }),
    }),
  },
);

builder.relayMutationField(
  'setPostTags',
  {
    description: 'The post and its new tags.',
    inputFields: (t) => ({
      postId: t.globalID({
        for: PostNode,
        required: true,
        description:
          'The post; NOT_FOUND when not visible, FORBIDDEN unless the author or an editor.',
      }),
      tags: t.stringList({
        required: true,
        description:
          'Tag names (created when missing), at most 20; the post’s tags become exactly these.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Replaces the tags of a post; its author or an editor only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({
      post: await setPostTags(ctx, input.postId.id, input.tags),
    }),
  },
  {
    description: 'The post with its new tags.',
    outputFields: (t) => ({
      post: t.field({
        type: PostNode,
        description: 'The post as tagged.',
        resolve: (payload) => payload.post,
      }),
    }),
  },
);

builder.relayMutationField(
  'importPosts',
  {
    description: 'The posts to create and whether to process them.',
    inputFields: (t) => ({
      posts: t.field({
        type: [CreatePostInput],
        required: true,
        description:
          'The posts, each validated as for `createPost`: at most MAX_IMPORT_POSTS per call (5,000 unless configured; more is BAD_USER_INPUT and writes nothing). The whole request body is limited to MAX_BODY_BYTES (262,144 bytes unless configured; 5,000 posts of 600 characters take about 3.5 MB): a larger request is refused with status 413 before it is read.',
      }),
      process: t.boolean({
        description: 'Queue a pipeline run (default steps) for every imported post.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Creates many posts at once: all of them, or none when one is invalid. Writers only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (listing every problem under `extensions.fields`), CONFLICT (a slug in use), RATE_LIMITED')}`,
    resolve: (_root, { input }, ctx, info) =>
      importPosts(ctx, input.posts, {
        process: input.process ?? false,
        returnRows: fieldsSelectedAt(info, []).has('posts'),
      }),
  },
  {
    description: 'What one importPosts call wrote.',
    outputFields: (t) => ({
      importedCount: t.int({
        description: 'Posts created.',
        resolve: (result) => result.count,
      }),
      queuedRunCount: t.int({
        description: 'Pipeline runs queued (with `process: true`), one per post.',
        resolve: (result) => result.queuedRuns,
      }),
      posts: t.field({
        type: [PostNode],
        description:
          'The posts created, in input order. Selecting it has the import read back every row it wrote (up to MAX_IMPORT_POSTS); leave it out when `importedCount` will do.',
        // Null only when the selection did not ask for this field: never resolved then.
        resolve: (result) => result.posts!,
      }),
    }),
  },
);
