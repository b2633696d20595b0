import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import { parseRedisUrl } from './redis-url.ts';

/** One Redis server or a Redis Cluster: both take the same commands and scripts. */
export type RedisClient = Redis | Cluster;

/**
 * A connection to REDIS_URL (a Cluster client for `redis+cluster://`, see redis-url.ts) that
 * logs its failures once per outage instead of once per retry, so a Redis restart is one warning
 * and one recovery line. `options` apply to every node of a cluster.
 */
export function createRedis(
  url: string,
  logger: Logger,
  name: string,
  options: RedisOptions = {},
): RedisClient {
  const target = parseRedisUrl(url);
  const redisOptions: RedisOptions = { connectionName: `quire-${name}`, ...options };
  const redis =
    target.kind === 'single'
      ? new Redis(target.url, { lazyConnect: false, ...redisOptions })
      : new Cluster(target.nodes, {
          // Nodes always queue while they connect; the cluster-level queue holds commands until
          // the slot map is known, and must follow the caller's choice.
          enableOfflineQueue: options.enableOfflineQueue ?? true,
          redisOptions: {
            ...redisOptions,
            username: target.username,
            password: target.password,
            tls: target.tls ? {} : undefined,
          },
        });
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    logger.warn({ redis: name, err: error.message }, 'redis unavailable');
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    logger.info({ redis: name }, 'redis reachable again');
  });
  return redis;
}

/** Consecutive failed calls that open a connection's circuit. */
const BREAKER_FAILURES = 3;

export type RedisGuardConfig = Pick<Config, 'REDIS_BREAKER_COOLDOWN_MS'>;

/**
 * A connection whose callers run their calls through a circuit breaker, each command bounded by
 * `commandTimeoutMs` (ioredis `commandTimeout`, counted from when the call is made): a Redis that
 * holds connections open but never answers is skipped after three failures, until a background
 * probe answers or the connection is re-established (ioredis `ready` closes the breaker).
 * Without `queueWhileConnecting` a call while Redis is down or still connecting fails at once
 * (no offline queue, no retries): right for calls a request waits on.
 */
export function createGuardedRedis(
  url: string,
  logger: Logger,
  name: string,
  config: RedisGuardConfig & { commandTimeoutMs: number; queueWhileConnecting: boolean },
): { client: RedisClient; breaker: CircuitBreaker } {
  const client = createRedis(url, logger, name, {
    commandTimeout: config.commandTimeoutMs,
    ...(config.queueWhileConnecting ? {} : { enableOfflineQueue: false, maxRetriesPerRequest: 0 }),
  });
  const breaker = new CircuitBreaker({
    name,
    failureThreshold: BREAKER_FAILURES,
    cooldownMs: config.REDIS_BREAKER_COOLDOWN_MS,
    probe: () => client.ping(),
    logger,
  });
  client.on('ready', () => breaker.close());
  return { client, breaker };
}
