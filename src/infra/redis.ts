import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.ts';

/**
 * A Redis connection that logs its failures once per outage instead of once per retry, so a
 * Redis restart is one warning and one recovery line.
 */
export function createRedis(
  url: string,
  logger: Logger,
  name: string,
  options: RedisOptions = {},
): Redis {
  const redis = new Redis(url, { connectionName: `quire-${name}`, lazyConnect: false, ...options });
  let down = false;
  redis.on('error', (error) => {
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
