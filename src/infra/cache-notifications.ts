import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { InvalidationFeed, InvalidationPeers } from './cache.ts';
import type { Logger } from './logger.ts';
import type { PostgresListener } from './pg-listener.ts';

/** The Postgres channel that carries cache invalidations between processes without Redis. */
export const CACHE_CHANNEL = 'quire_cache';

/** Postgres refuses NOTIFY payloads of 8000 bytes or more; tags are split to stay below. */
const MAX_PAYLOAD_CHARS = 7000;

interface CacheNotification {
  /** The sending cache, which applied the tags itself already. */
  origin: string;
  tags?: string[];
  /** Every entry is dropped (e.g. the schema changed under them). */
  renew?: boolean;
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.Client, 'query'>;

/**
 * Tells every process listening on this database (`listenForCacheInvalidations`) to drop its
 * in-process cache entries under `tags`. Call after the write committed (a NOTIFY sent inside a
 * transaction is delivered at its commit anyway). `Cache.invalidate` calls it for its own
 * invalidations; a writer without a Cache (an import script, a one-off fix) calls it directly.
 */
export async function notifyCacheInvalidation(
  db: Queryable,
  tags: readonly string[],
  origin = 'external',
): Promise<void> {
  let chunk: string[] = [];
  let size = 0;
  const send = async () => {
    const payload: CacheNotification = { origin, tags: chunk };
    await db.query('select pg_notify($1, $2)', [CACHE_CHANNEL, JSON.stringify(payload)]);
    chunk = [];
    size = 0;
  };
  for (const tag of tags) {
    const length = JSON.stringify(tag).length + 1;
    if (size + length > MAX_PAYLOAD_CHARS && chunk.length > 0) await send();
    chunk.push(tag);
    size += length;
  }
  if (chunk.length > 0) await send();
}

/**
 * Tells every listening process to drop all its cache entries: after migrations, whose changes
 * no tag describes.
 */
export async function notifyCacheRenewal(db: Queryable, origin = 'external'): Promise<void> {
  const payload: CacheNotification = { origin, renew: true };
  await db.query('select pg_notify($1, $2)', [CACHE_CHANNEL, JSON.stringify(payload)]);
}

/** Peers reached through `pool`: publishing is one NOTIFY per ~7 kB of tags. */
export function postgresPeers(pool: pg.Pool): InvalidationPeers & { origin: string } {
  const origin = randomUUID();
  return { origin, publish: (tags) => notifyCacheInvalidation(pool, tags, origin) };
}

/**
 * Applies other processes' invalidations to this process's cache, heard on CACHE_CHANNEL through
 * `listener` (the process's one LISTEN connection). Notifications sent while it is down are lost,
 * so the cache is paused (renewed, serving nothing) from now until LISTEN runs, and from each loss
 * until LISTEN runs again, then renewed once more: no entry loaded before a write it did not hear
 * is ever served.
 */
export function listenForCacheInvalidations(
  listener: PostgresListener,
  origin: string,
  feed: InvalidationFeed,
  logger: Logger,
): void {
  feed.pause();
  listener.listen(CACHE_CHANNEL, {
    notification: (payload) => {
      let message: CacheNotification;
      try {
        message = JSON.parse(payload) as CacheNotification;
      } catch {
        return;
      }
      if (message.origin === origin) return;
      if (message.renew) feed.renew();
      if (message.tags) feed.apply(message.tags);
    },
    listening: (recovered) => {
      feed.resume();
      if (recovered) logger.info('cache invalidation feed back: cache renewed');
    },
    down: () => feed.pause(),
  });
}
