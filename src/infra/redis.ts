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

export type RedisGuardConfig = Pick<
  Config,
  'REDIS_COMMAND_TIMEOUT_MS' | 'REDIS_BREAKER_COOLDOWN_MS'
>;

/**
 * A connection for calls a request waits on (or must not pile up): no offline queue and no
 * retries (a call while Redis is down fails at once), each command bounded by
 * REDIS_COMMAND_TIMEOUT_MS (ioredis `commandTimeout`), and a circuit breaker callers run their
 * calls through, so a Redis that holds connections open but never answers is skipped after
 * three timeouts. A reconnect (ioredis `ready`) closes the breaker at once.
 */
export function createGuardedRedis(
  url: string,
  logger: Logger,
  name: string,
  config: RedisGuardConfig,
): { client: RedisClient; breaker: CircuitBreaker } {
  const client = createRedis(url, logger, name, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
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
