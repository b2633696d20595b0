import { typesDependingOn } from '../../plugins/response-cache.ts';
import { isStaff, type Viewer } from '../auth/viewer.ts';

/** Any change to any post: lists, counts and search results depend on it. */
export const ALL_POSTS_TAG = 'posts';

/**
 * What cached responses reaching these types depend on (see useResponseCache). Tags are created
 * and linked only by post writes, which all invalidate ALL_POSTS_TAG.
 */
export const postResponseTags = typesDependingOn(
  [ALL_POSTS_TAG],
  [
    'Post',
    'PostConnection',
    'PostEdge',
    'PostStats',
    'PostStatusCount',
    'Tag',
    'TagCount',
    'TagConnection',
    'TagEdge',
  ],
);

/** Query fields that count against a rate limit on every call: never answered from a cache. */
export const rateLimitedQueryFields = ['searchPosts'];

/** Cache tags a change to this post invalidates. */
export const postCacheTags = (post: { id: string; author_id: string }): string[] => [
  `post:${post.id}`,
  ALL_POSTS_TAG,
  `user-posts:${post.author_id}`,
];

/**
 * The part of a cache key that decides visibility: computed results over posts differ for
 * anonymous readers, each author (their drafts), and editors.
 */
export const visibilityScope = (viewer: Viewer | null): string =>
  isStaff(viewer) ? 'staff' : viewer ? `user:${viewer.id}` : 'public';
