import { builder } from '../../builder.ts';
import { batchable } from '../../context.ts';
import { inKeyOrder } from '../../db/batch.ts';
import { connectionSelection, pageLimits, parsePageArgs, toPage } from '../../db/keyset.ts';
import type { CommentRow } from '../../db/tables.ts';
import { mutationErrors } from '../../errors.ts';
import { postIdsVisibleTo } from '../post/post.policy.ts';
import { PostNode } from '../post/post.schema.ts';
import { authorOrId, UserNode } from '../user/user.schema.ts';
import { commentKey, loadCommentPage } from './comment.pages.ts';
import { commentOrder, commentsByIds } from './comment.repository.ts';
import { addComment } from './comment.service.ts';

export const CommentNode = builder.loadableNode('Comment', {
  description: 'A reader comment on a post.',
  id: { resolve: (comment: CommentRow) => comment.id },
  load: batchable(async (ids: string[], ctx) => {
    const comments = inKeyOrder(ids, await commentsByIds(ctx.db, ids), (comment) => comment.id);
    const visible = await postIdsVisibleTo(
      ctx,
      comments.flatMap((comment) => (comment ? [comment.post_id] : [])),
    );
    return comments.map((comment) => (comment && visible.has(comment.post_id) ? comment : null));
  }),
  fields: (t) => ({
    body: t.exposeString('body', {
      description: 'The comment text as written, 1–10,000 characters.',
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was posted.' }),
    author: t.field({
      type: UserNode,
      description: 'Who wrote it.',
      resolve: (comment, _args, ctx) => authorOrId(ctx, comment),
    }),
    post: t.field({
      type: PostNode,
      nullable: true,
      description: 'Null when the viewer may not see the post.',
      resolve: (comment) => comment.post_id,
    }),
  }),
});

const CommentConnection = builder.connectionObject({
  type: CommentNode,
  name: 'CommentConnection',
});

builder.objectField(PostNode, 'comments', (t) =>
  t.field({
    type: CommentConnection,
    description: 'Newest first.',
    args: t.arg.connectionArgs(),
    // Batched by arguments and by whether a page is selected, not by path: aliased posts share
    // one statement, and `comments { totalCount }` runs the grouped count alone.
    resolve: (post, args, ctx, info) => {
      const { page } = connectionSelection(info);
      // A post list that counted its posts' comments in its own statement answers a bare count.
      if (!page && post.comment_count != null) {
        const count = Number(post.comment_count);
        return {
          ...toPage(
            [],
            parsePageArgs(args, commentOrder, pageLimits(ctx.config)),
            commentOrder,
            commentKey,
          ),
          totalCount: () => Promise.resolve(count),
        };
      }
      return loadCommentPage(ctx, info, args, page, post.id);
    },
  }),
);

builder.relayMutationField(
  'addComment',
  {
    description: 'The post and the comment.',
    inputFields: (t) => ({
      postId: t.globalID({
        for: PostNode,
        required: true,
        description: 'The post; NOT_FOUND when it does not exist or the viewer may not see it.',
      }),
      body: t.string({ required: true, description: '1–10,000 characters after trimming.' }),
    }),
  },
  {
    authScopes: { signedIn: true },
    description: `Comments on a post as the viewer; any signed-in user on a post they may see. ${mutationErrors('UNAUTHENTICATED, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({
      comment: await addComment(ctx, input.postId.id, input.body),
    }),
  },
  {
    description: 'The comment posted.',
    outputFields: (t) => ({
      comment: t.field({
        type: CommentNode,
        description: 'The new comment.',
        resolve: (payload) => payload.comment,
      }),
    }),
  },
);
