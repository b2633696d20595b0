import type { Cache } from '../../infra/cache.ts';
import type { PipelineEventMessage, PostStatusMessage, QuirePubSub } from '../../infra/pubsub.ts';
import { typesDependingOn } from '../../plugins/response-cache.ts';
import { postCacheTags } from '../post/post.cache.ts';

/** Every pipeline change appends an event: runs, steps and events of cached responses depend on it. */
export const PIPELINE_TAG = 'pipeline';

export const pipelineResponseTags = typesDependingOn(
  [PIPELINE_TAG],
  [
    'PipelineRun',
    'PipelineRunConnection',
    'PipelineRunEdge',
    'PipelineStep',
    'PipelineEvent',
    'PipelineEventConnection',
    'PipelineEventEdge',
  ],
);

/** What a committed pipeline transaction tells subscribers and the cache. */
export interface PipelineOutbox {
  events: PipelineEventMessage[];
  statusChanges: PostStatusMessage[];
  /** Posts whose columns or tags a step changed. */
  changedPosts: { id: string; author_id: string }[];
}

export const emptyOutbox = (): PipelineOutbox => ({
  events: [],
  statusChanges: [],
  changedPosts: [],
});

/**
 * Runs after commit, in commit order: invalidates first, so a subscriber that reacts to an event
 * by querying never reads a cached value older than the event.
 */
export async function publishOutbox(
  pubsub: QuirePubSub,
  cache: Cache,
  outbox: PipelineOutbox,
): Promise<void> {
  const posts = [
    ...outbox.changedPosts,
    ...outbox.statusChanges.map((change) => ({ id: change.postId, author_id: change.authorId })),
  ];
  await cache.invalidate([
    ...posts.flatMap(postCacheTags),
    ...(outbox.events.length > 0 ? [PIPELINE_TAG] : []),
  ]);
  for (const event of outbox.events) pubsub.publish('pipelineRun', event.runId, event);
  for (const change of outbox.statusChanges) pubsub.publish('postStatusChanged', change);
}
