import type { APQStore } from '@graphql-yoga/plugin-apq';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { createMemoryApqStore, createRedisApqStore } from '../plugins/persisted-operations.ts';
import { type Cache, createDisabledCache, createMemoryCache, createRedisCache } from './cache.ts';
import { listenForCacheInvalidations, postgresPeers } from './cache-notifications.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import { PostgresListener } from './pg-listener.ts';
import { createPostgresPubSub } from './pg-pubsub.ts';
import { createQuirePubSub, type QuirePubSub } from './pubsub.ts';
import { RateLimiter } from './rate-limit.ts';
import { createGuardedRedis } from './redis.ts';

export interface SharedState {
  pubsub: QuirePubSub;
  /**
   * Signals every instance must hear, such as viewer changes: the Redis pub/sub, or without Redis
   * Postgres LISTEN/NOTIFY on the process's one LISTEN connection, which the in-process cache's
   * invalidations share (`pubsub` is then in-process only).
   */
  signals: QuirePubSub;
  cache: Cache;
  rateLimiter: RateLimiter;
  /** Documents registered by automatic persisted queries (APQ). */
  apqStore: APQStore;
  /** One per guarded Redis connection (none without Redis), for metrics. */
  redisBreakers: CircuitBreaker[];
  /**
   * The process's one Postgres LISTEN connection, with or without Redis: it connects when a
   * channel is first listened to (the pipeline worker's wake-ups; without Redis also `signals` and
   * the in-process cache's invalidations). Closed by `close`.
   */
  listener: PostgresListener;
  /** Readiness: true without Redis (in-process state), else whether Redis answers PING. */
  redisReachable(): Promise<boolean>;
  close(): Promise<void>;
}

/** Documents an instance keeps without Redis (APQ registrations, least recently used dropped). */
const MEMORY_APQ_DOCUMENTS = 1000;

/**
 * Pub/sub, cache, rate-limit and APQ state: in Redis, shared by every instance, when REDIS_URL is set; in this
 * process otherwise, with cache invalidations and viewer signals exchanged over `database`
 * (NOTIFY from the pool, heard on the process's one LISTEN connection, closed by `close`). Cache and rate-limit commands fail fast while Redis is down or silent (no
 * offline queue, REDIS_COMMAND_TIMEOUT_MS, a circuit breaker) so a request falls back to Postgres
 * and per-instance limits instead of waiting.
 */
export function createSharedState(
  config: Config,
  logger: Logger,
  database: { pool: pg.Pool; url: string },
): SharedState {
  const windowMs = config.RATE_LIMIT_WINDOW_SECONDS * 1000;
  const rules = {
    mutation: { max: config.RATE_LIMIT_MUTATIONS, windowMs },
    startPipeline: { max: config.RATE_LIMIT_START_PIPELINE, windowMs },
    searchPosts: { max: config.RATE_LIMIT_SEARCH, windowMs },
  };
  const pubsub = createQuirePubSub(config.REDIS_URL, config.REDIS_PREFIX, logger, config);
  // One LISTEN connection for the process, opened by the first channel listened to.
  const listener = new PostgresListener(config.DATABASE_LISTEN_URL ?? database.url, logger, {
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    heartbeatMs: config.LISTEN_HEARTBEAT_MS,
    heartbeatTimeoutMs: config.LISTEN_HEARTBEAT_TIMEOUT_MS,
  });
  if (!config.REDIS_URL) {
    const cache = createInProcessCache(config, logger, database.pool, listener);
    return {
      pubsub: pubsub.pubsub,
      signals: createPostgresPubSub(database.pool, listener, logger),
      cache,
      rateLimiter: new RateLimiter(rules, undefined, logger),
      apqStore: createMemoryApqStore({
        max: MEMORY_APQ_DOCUMENTS,
        ttlSeconds: config.APQ_TTL_SECONDS,
      }),
      listener,
      redisBreakers: [],
      redisReachable: async () => true,
      close: async () => {
        await listener.close();
        await pubsub.close();
      },
    };
  }
  const { client: redis, breaker } = createGuardedRedis(config.REDIS_URL, logger, 'commands', {
    ...config,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    queueWhileConnecting: false,
  });
  return {
    pubsub: pubsub.pubsub,
    signals: pubsub.pubsub,
    cache: config.CACHE
      ? createRedisCache(redis, config.REDIS_PREFIX, logger, breaker)
      : createDisabledCache(logger),
    rateLimiter: new RateLimiter(
      rules,
      { client: redis, prefix: config.REDIS_PREFIX, breaker },
      logger,
    ),
    apqStore: createRedisApqStore({
      redis,
      prefix: config.REDIS_PREFIX,
      breaker,
      ttlSeconds: config.APQ_TTL_SECONDS,
      logger,
    }),
    redisBreakers: pubsub.publishBreaker ? [breaker, pubsub.publishBreaker] : [breaker],
    listener,
    redisReachable: async () => (await redis.ping()) === 'PONG',
    close: async () => {
      await listener.close();
      redis.disconnect();
      await pubsub.close();
    },
  };
}

/**
 * Every writer without Redis (servers, `npm run seed`, the CLIs) tells the others of its
 * invalidations over Postgres, and an in-process cache applies theirs from the process's LISTEN
 * connection (`listener`).
 * It is used only when this process owns the database (the embedded default): with an external
 * DATABASE_URL, writers that are not Quire processes (or run without it) could change rows
 * unheard; without a shared Redis, caching is off there.
 */
function createInProcessCache(
  config: Config,
  logger: Logger,
  pool: pg.Pool,
  listener: PostgresListener,
): Cache {
  const peers = postgresPeers(pool);
  if (!config.CACHE) return createDisabledCache(logger, peers);
  if (config.DATABASE_URL) {
    logger.warn(
      'cache disabled: DATABASE_URL without REDIS_URL, other processes writing the database could not invalidate an in-process cache; set REDIS_URL to cache',
    );
    return createDisabledCache(logger, peers);
  }
  const { cache, feed } = createMemoryCache(config.CACHE_MEMORY_ENTRIES, logger, peers);
  listenForCacheInvalidations(listener, peers.origin, feed, logger);
  return cache;
}
