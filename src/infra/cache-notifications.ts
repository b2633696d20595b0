import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { InvalidationFeed, InvalidationPeers } from './cache.ts';
import type { Logger } from './logger.ts';

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
 * Tells every process listening on this database (`CacheInvalidationListener`) to drop its
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
 * Applies other processes' invalidations to this process's cache, from a dedicated LISTEN
 * connection. Notifications sent while it is down are lost, so the cache is paused (renewed,
 * serving nothing) from the loss until LISTEN runs again, then renewed once more: no entry loaded
 * before a write it did not hear is ever served.
 */
export class CacheInvalidationListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private connecting: Promise<void> | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly origin: string,
    private readonly feed: InvalidationFeed,
    private readonly logger: Logger,
    private readonly retryMs = 1000,
  ) {}

  /** Connects in the background; the cache stays paused until LISTEN runs. */
  start(): void {
    this.connecting = this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.connecting;
    await this.client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt += 1) {
      const client = new pg.Client({
        connectionString: this.connectionString,
        application_name: 'quire cache listener',
      });
      client.on('error', (error) => this.lost(client, error));
      client.on('notification', (message) => this.receive(message.payload));
      try {
        await client.connect();
        await client.query(`listen ${CACHE_CHANNEL}`);
        if (this.stopped) {
          await client.end();
          return;
        }
        this.client = client;
        this.feed.resume();
        if (attempt > 0) this.logger.info('cache invalidation feed back: cache renewed');
        return;
      } catch (error) {
        await client.end().catch(() => {});
        if (attempt === 0)
          this.logger.warn(
            { err: (error as Error).message },
            'cache invalidation feed unavailable: in-process cache off until it connects',
          );
        await sleep(this.retryMs);
      }
    }
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.stopped || client !== this.client) return;
    this.client = undefined;
    this.feed.pause();
    this.logger.warn(
      { err: error.message },
      'cache invalidation feed lost: in-process cache off until it reconnects',
    );
    void client.end().catch(() => {});
    this.connecting = sleep(this.retryMs).then(() => this.connect());
  }

  private receive(payload: string | undefined): void {
    if (!payload) return;
    let message: CacheNotification;
    try {
      message = JSON.parse(payload) as CacheNotification;
    } catch {
      return;
    }
    if (message.origin === this.origin) return;
    if (message.renew) this.feed.renew();
    if (message.tags) this.feed.apply(message.tags);
  }
}
