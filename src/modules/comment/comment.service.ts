import { z } from 'zod';
import type { Context } from '../../context.ts';
import type { CommentRow } from '../../db/tables.ts';
import { transact } from '../../db/transaction.ts';
import { notFound } from '../../errors.ts';
import { parseInput } from '../../validation.ts';
import { canSeePost, requireViewer } from '../post/post.policy.ts';
import { lockPost } from '../post/post.repository.ts';
import { ALL_COMMENTS_TAG } from './comment.cache.ts';
import { insertComment } from './comment.repository.ts';

const commentInput = z.object({ body: z.string().trim().min(1, 'must not be empty').max(10_000) });

/** Any signed-in user may comment on a post they can see. */
export async function addComment(ctx: Context, postId: string, body: string): Promise<CommentRow> {
  const viewer = requireViewer(ctx);
  const input = parseInput(commentInput, { body }, 'input');
  return transact(ctx.db, async (trx, afterCommit) => {
    // Locks the post so a concurrent delete cannot strand the comment.
    const post = await lockPost(trx, postId);
    if (!post || !canSeePost(viewer, post)) throw notFound('Post');
    afterCommit(() => ctx.deps.cache.invalidate([ALL_COMMENTS_TAG]));
    return insertComment(trx, { postId, authorId: viewer.id, body: input.body });
  });
}
