import { type Context, entityCache } from '../../context.ts';
import type { PostRow } from '../../db/tables.ts';
import { appError, notFound } from '../../errors.ts';
import { isStaff, type Viewer } from '../auth/viewer.ts';
import { postsByIds } from './post.repository.ts';

export function canSeePost(
  viewer: Viewer | null,
  post: Pick<PostRow, 'status' | 'author_id'>,
): boolean {
  return post.status === 'PUBLISHED' || isStaff(viewer) || viewer?.id === post.author_id;
}

export function requireViewer(ctx: Context): Viewer {
  if (!ctx.viewer) throw appError('UNAUTHENTICATED', 'Sign in with a bearer token to do this');
  return ctx.viewer;
}

/** Authors, editors and admins write; viewers only read and comment. */
export function requireWriter(ctx: Context): Viewer {
  const viewer = requireViewer(ctx);
  if (viewer.role === 'VIEWER') throw appError('FORBIDDEN', 'Your role cannot write posts');
  return viewer;
}

/**
 * A post the viewer cannot see is reported as missing, so ids of drafts leak nothing; one they
 * can see but not change is FORBIDDEN.
 */
export function requireEditable(viewer: Viewer, post: PostRow | undefined): PostRow {
  if (!post || !canSeePost(viewer, post)) throw notFound('Post');
  if (!isStaff(viewer) && post.author_id !== viewer.id) {
    throw appError('FORBIDDEN', 'Only the author or an editor can change this post');
  }
  return post;
}

/** Ids among `postIds` the viewer may see: comments and runs of a hidden post stay hidden too. */
export async function postIdsVisibleTo(
  ctx: Context,
  postIds: readonly string[],
): Promise<Set<string>> {
  const posts = await ctx.deps.cache.rowsByIds(
    'post',
    [...new Set(postIds)],
    (ids) => postsByIds(ctx.db, ids),
    entityCache(ctx),
  );
  return new Set(posts.flatMap((post) => (post && canSeePost(ctx.viewer, post) ? [post.id] : [])));
}
