import { typesDependingOn } from '../../plugins/response-cache.ts';
import { ALL_POSTS_TAG } from '../post/post.cache.ts';

/** Any change to any user: user lists depend on it. */
export const ALL_USERS_TAG = 'users';

/** A user's fields include their post count and posts, so posts' writes matter too. */
export const userResponseTags = typesDependingOn(
  [ALL_USERS_TAG, ALL_POSTS_TAG],
  ['User', 'UserConnection', 'UserEdge'],
);
