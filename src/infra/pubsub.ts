import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import type { PubSub } from '@graphql-yoga/subscription';
import { Repeater, SlidingBuffer } from '@repeaterjs/repeater';
import type { PostStatus } from '../db/tables.ts';
import type { Logger } from './logger.ts';
import { createRedis } from './redis.ts';

/** A pipeline event as it travels between processes (JSON: timestamps stay strings). */
export interface PipelineEventMessage {
  id: string;
  runId: string;
  postId: string;
  seq: number;
  type: string;
  payload: Record<string, unknown>;
  createdAt: string;
}

export interface PostStatusMessage {
  postId: string;
  authorId: string;
  status: PostStatus;
}

/**
 * Who a bearer token speaks for changed: `tokenHash` was revoked, or (null) the user's role
 * changed and all of their tokens now speak for another role.
 */
export interface ViewerChangedMessage {
  userId: string;
  tokenHash: string | null;
}

export interface QuirePubSub
  extends PubSub<{
    pipelineRun: [runId: string, event: PipelineEventMessage];
    postStatusChanged: [PostStatusMessage];
    viewerChanged: [ViewerChangedMessage];
  }> {
  /**
   * Resolves once the broker has confirmed every subscription started before the call: from
   * then on, whatever is published reaches them. A replay that reads stored events after this
   * point cannot miss an event published between its read and the subscription.
   */
  subscriptionsConfirmed(): Promise<void>;
  /**
   * Calls `listener` each time the live feed (re)connects. Messages published while it was
   * away are lost, not queued: a subscriber that must not miss any reads them from their store.
   * Returns the function that removes the listener.
   */
  onReconnect(listener: () => void): () => void;
}

export interface PubSubHandle {
  pubsub: QuirePubSub;
  close(): Promise<void>;
}

// Slow subscribers drop their oldest buffered events instead of erroring; pipeline subscribers
// notice the gap in `seq` and refill it from the events table.
const SUBSCRIBER_BUFFER = 1024;

/**
 * yoga's createPubSub, with one buffer per subscription. Its `repeaterBuffer` option takes one
 * buffer instance and hands it to every subscription: a slow subscriber's backlog then sat in a
 * queue the others drained, and a subscriber to one run received another run's events.
 */
function createBufferedPubSub(
  target: EventTarget = new EventTarget(),
  subscriptionsConfirmed: () => Promise<void> = async () => {},
  onReconnect: QuirePubSub['onReconnect'] = () => () => {},
): QuirePubSub {
  const topicOf = (routingKey: string, id: unknown) =>
    id === undefined ? routingKey : `${routingKey}:${String(id)}`;
  return {
    publish(routingKey: string, ...args: unknown[]) {
      const topic = args[1] === undefined ? routingKey : topicOf(routingKey, args[0]);
      target.dispatchEvent(new CustomEvent(topic, { detail: args[1] ?? args[0] ?? null }));
    },
    subscribe(routingKey: string, id?: unknown) {
      const topic = topicOf(routingKey, id);
      return new Repeater((next, stop) => {
        const listener = (event: Event) => next((event as CustomEvent).detail);
        target.addEventListener(topic, listener);
        stop.then(() => target.removeEventListener(topic, listener));
      }, new SlidingBuffer(SUBSCRIBER_BUFFER));
    },
    subscriptionsConfirmed,
    onReconnect,
  } as QuirePubSub;
}

/** Redis pub/sub (shared by every instance and worker) when a URL is given, in-process otherwise. */
export function createQuirePubSub(
  redisUrl: string | undefined,
  prefix: string,
  logger: Logger,
): PubSubHandle {
  if (!redisUrl) {
    return { pubsub: createBufferedPubSub(), close: async () => {} };
  }
  const publishClient = createRedis(redisUrl, logger, 'publish');
  const subscribeClient = createRedis(redisUrl, logger, 'subscribe');
  // One listener on the client (not one per stream): ioredis re-sends its SUBSCRIBEs before it
  // emits `ready`, on the next tick.
  const reconnectListeners = new Set<() => void>();
  subscribeClient.on('ready', () => {
    for (const listener of reconnectListeners) listener();
  });
  return {
    pubsub: withTopicPrefix(
      prefix,
      createBufferedPubSub(
        createRedisEventTarget({ publishClient, subscribeClient }),
        // Redis answers one connection's commands in order: the PONG follows every SUBSCRIBE sent
        // before it, and redis-event-target sends its SUBSCRIBE without waiting for the reply.
        async () => {
          await subscribeClient.ping();
        },
        (listener) => {
          reconnectListeners.add(listener);
          return () => reconnectListeners.delete(listener);
        },
      ),
    ),
    async close() {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}

/** Redis channels are global (not per database number), so topics carry the key prefix. */
function withTopicPrefix(prefix: string, pubsub: QuirePubSub): QuirePubSub {
  const untyped = pubsub as unknown as {
    publish(topic: string, ...args: unknown[]): void;
    subscribe(topic: string, ...args: unknown[]): unknown;
  };
  return {
    publish: (topic: string, ...args: unknown[]) => untyped.publish(prefix + topic, ...args),
    subscribe: (topic: string, ...args: unknown[]) => untyped.subscribe(prefix + topic, ...args),
    subscriptionsConfirmed: () => pubsub.subscriptionsConfirmed(),
    onReconnect: (listener: () => void) => pubsub.onReconnect(listener),
  } as QuirePubSub;
}
