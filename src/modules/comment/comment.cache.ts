import { typesDependingOn } from '../../plugins/response-cache.ts';
import { ALL_POSTS_TAG } from '../post/post.cache.ts';

/** Any new comment: comment pages of cached responses depend on it. */
export const ALL_COMMENTS_TAG = 'comments';

/** Deleting a post deletes its comments, so posts' writes matter too. */
export const commentResponseTags = typesDependingOn(
  [ALL_COMMENTS_TAG, ALL_POSTS_TAG],
  ['Comment', 'CommentConnection', 'CommentEdge'],
);
