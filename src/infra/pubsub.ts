import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import type { PubSub } from '@graphql-yoga/subscription';
import { Cluster } from 'ioredis';
import type { PostStatus } from '../db/tables.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import {
  createGuardedRedis,
  createRedis,
  type RedisClient,
  type RedisGuardConfig,
} from './redis.ts';

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
  /**
   * Calls `listener` synchronously with each message of a topic (the same object for every
   * listener of this process), until the returned function is called. For fan-out: a thousand
   * streams of one run cost a call each per message, where `subscribe` costs each an iterator
   * step and its promises. The listener keeps its own buffer, if any.
   */
  listen<K extends 'pipelineRun'>(
    routingKey: K,
    id: string,
    listener: (message: PipelineEventMessage) => void,
  ): () => void;
}

export interface PubSubHandle {
  pubsub: QuirePubSub;
  /** The publish connection's breaker (Redis only), for metrics. */
  publishBreaker?: CircuitBreaker;
  close(): Promise<void>;
}

// Slow subscribers drop their oldest buffered events instead of erroring; pipeline subscribers
// notice the gap in `seq` and refill it from the events table.
const SUBSCRIBER_BUFFER = 1024;

/**
 * One subscription to a topic, as an async iterator: it listens from its first `next()` (as a
 * Repeater does: a feed created but never read holds nothing), buffers up to SUBSCRIBER_BUFFER
 * undelivered messages (dropping the oldest), and stops listening on `return()` or `throw()`,
 * which also end any pending `next()`. A Repeater with a SlidingBuffer did this with several
 * promises per message; with a thousand subscribers of one topic that was a tenth of fan-out's
 * CPU.
 */
class TopicFeed<T> implements AsyncIterableIterator<T> {
  #queue: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void)[] = [];
  #state: 'new' | 'listening' | 'done' = 'new';
  readonly #listener = (event: Event) => {
    const value = (event as CustomEvent).detail as T;
    const waiting = this.#waiting.shift();
    if (waiting) waiting({ value, done: false });
    else {
      if (this.#queue.length >= SUBSCRIBER_BUFFER) this.#queue.shift();
      this.#queue.push(value);
    }
  };

  constructor(
    private readonly target: EventTarget,
    private readonly topic: string,
  ) {}

  next(): Promise<IteratorResult<T>> {
    if (this.#state === 'new') {
      this.#state = 'listening';
      this.target.addEventListener(this.topic, this.#listener);
    }
    if (this.#queue.length > 0)
      return Promise.resolve({ value: this.#queue.shift()!, done: false });
    if (this.#state === 'done') return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    this.#finish();
    return Promise.resolve({ value: value as T, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.#finish();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** `await using` support, as a Repeater has (the PubSub type promises one). */
  [Symbol.asyncDispose](): Promise<IteratorResult<T>> {
    return this.return();
  }

  [Symbol.dispose](): void {
    this.#finish();
  }

  #finish(): void {
    if (this.#state === 'listening') this.target.removeEventListener(this.topic, this.#listener);
    this.#state = 'done';
    this.#queue = [];
    for (const waiting of this.#waiting.splice(0)) waiting({ value: undefined, done: true });
  }
}

/**
 * yoga's createPubSub, with one buffer per subscription (its TopicFeed). yoga's `repeaterBuffer`
 * option takes one buffer instance and hands it to every subscription: a slow subscriber's
 * backlog then sat in a queue the others drained, and a subscriber to one run received another
 * run's events.
 */
export function createBufferedPubSub(
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
      return new TopicFeed(target, topicOf(routingKey, id));
    },
    listen(routingKey: string, id: string, listener: (message: never) => void) {
      const topic = topicOf(routingKey, id);
      const onEvent = (event: Event) => listener((event as CustomEvent).detail as never);
      target.addEventListener(topic, onEvent);
      return () => target.removeEventListener(topic, onEvent);
    },
    subscriptionsConfirmed,
    onReconnect,
  } as QuirePubSub;
}

/**
 * No request waits for a publish: this only caps how many pile up while Redis is silent, and must
 * outlast a (re)connect, during which publishes queue.
 */
const PUBLISH_TIMEOUT_MS = 1000;

/**
 * Redis pub/sub (shared by every instance and worker) when a URL is given, in-process otherwise.
 * Publishing never waits: a publish Redis refuses, does not confirm within PUBLISH_TIMEOUT_MS,
 * or that the open breaker skips is dropped (logged at debug level).
 */
export function createQuirePubSub(
  redisUrl: string | undefined,
  prefix: string,
  logger: Logger,
  guard: RedisGuardConfig,
): PubSubHandle {
  if (!redisUrl) {
    return { pubsub: createBufferedPubSub(), close: async () => {} };
  }
  const publish = createGuardedRedis(redisUrl, logger, 'publish', {
    ...guard,
    commandTimeoutMs: PUBLISH_TIMEOUT_MS,
    queueWhileConnecting: true,
  });
  const publishClient = publish.client;
  const subscribeClient = createRedis(redisUrl, logger, 'subscribe');
  // One listener on the client (not one per stream): ioredis re-sends its SUBSCRIBEs before it
  // emits `ready`, on the next tick.
  const reconnectListeners = new Set<() => void>();
  subscribeClient.on('ready', () => {
    for (const listener of reconnectListeners) listener();
  });
  return {
    publishBreaker: publish.breaker,
    pubsub: withTopicPrefix(
      prefix,
      createBufferedPubSub(
        withGuardedPublish(
          createRedisEventTarget({ publishClient, subscribeClient }),
          publish,
          logger,
        ),
        trackSubscribeReplies(subscribeClient),
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

/**
 * redis-event-target sends SUBSCRIBE and UNSUBSCRIBE without waiting for the reply; this keeps
 * the SUBSCRIBE replies still due, and the returned function waits for them (rejecting if one
 * fails). A PING behind them would do on one connection, but a Cluster client sends PING
 * elsewhere than to its subscriber. An UNSUBSCRIBE refused because the connection closed has
 * nothing left to undo; unhandled, its rejection would end the process.
 */
function trackSubscribeReplies(client: RedisClient): () => Promise<void> {
  type ChannelCommand = (...channels: string[]) => Promise<unknown>;
  const due = new Set<Promise<unknown>>();
  const commands = client as unknown as { subscribe: ChannelCommand; unsubscribe: ChannelCommand };
  const subscribe = commands.subscribe.bind(client);
  const unsubscribe = commands.unsubscribe.bind(client);
  commands.subscribe = (...channels) => {
    const reply = subscribe(...channels);
    due.add(reply);
    const settle = () => void due.delete(reply);
    reply.then(settle, settle);
    return reply;
  };
  commands.unsubscribe = (...channels) => {
    const reply = unsubscribe(...channels);
    reply.catch(() => {});
    return reply;
  };
  return async () => {
    await Promise.all(due);
  };
}

/**
 * redis-event-target sends PUBLISH and drops the promise: a silent Redis would pile up unanswered
 * commands and a refused one would reject unhandled. Publishes go through the breaker instead,
 * with the same encoding (JSON, '' for no payload).
 */
function withGuardedPublish(
  target: EventTarget,
  publish: { client: RedisClient; breaker: CircuitBreaker },
  logger: Logger,
): EventTarget {
  return {
    addEventListener: target.addEventListener.bind(target),
    removeEventListener: target.removeEventListener.bind(target),
    dispatchEvent(event: Event) {
      const detail = (event as CustomEvent).detail;
      const message = detail === undefined ? '' : JSON.stringify(detail);
      publish.breaker
        .run(() => orderedPublisher(publish.client).publish(event.type, message))
        .catch((error: Error) =>
          logger.debug({ err: error.message, channel: event.type }, 'publish dropped'),
        );
      return true;
    },
  };
}

/**
 * A Cluster client sends each PUBLISH to a random node, so one process's messages would arrive
 * out of order. Classic pub/sub reaches subscribers on every node: publishing through one node
 * (the first master the client knows, until a failover changes it) keeps them in order.
 */
function orderedPublisher(client: RedisClient): RedisClient {
  return client instanceof Cluster ? (client.nodes('master')[0] ?? client) : client;
}

/** Redis channels are global (not per database number), so topics carry the key prefix. */
function withTopicPrefix(prefix: string, pubsub: QuirePubSub): QuirePubSub {
  const untyped = pubsub as unknown as {
    publish(topic: string, ...args: unknown[]): void;
    subscribe(topic: string, ...args: unknown[]): unknown;
    listen(topic: string, id: string, listener: (message: never) => void): () => void;
  };
  return {
    publish: (topic: string, ...args: unknown[]) => untyped.publish(prefix + topic, ...args),
    subscribe: (topic: string, ...args: unknown[]) => untyped.subscribe(prefix + topic, ...args),
    listen: (topic: string, id: string, listener: (message: never) => void) =>
      untyped.listen(prefix + topic, id, listener),
    subscriptionsConfirmed: () => pubsub.subscriptionsConfirmed(),
    onReconnect: (listener: () => void) => pubsub.onReconnect(listener),
  } as QuirePubSub;
}
