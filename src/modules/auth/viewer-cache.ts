import { LRUCache } from 'lru-cache';
import type { Db } from '../../db/database.ts';
import { timestampMillis } from '../../db/timestamps.ts';
import type { Cache } from '../../infra/cache.ts';
import type { Logger } from '../../infra/logger.ts';
import type { ViewerChangedMessage } from '../../infra/pubsub.ts';
import { liveTokenHashesOfUser, markTokenUsed, viewerByTokenHash } from './auth.repository.ts';
import type { Viewer } from './viewer.ts';

/**
 * How long this process serves a viewer without asking the shared cache again. A revocation or
 * role change drops the entry at once through the `viewerChanged` signal; this bounds what a lost
 * signal (Redis down or silent, a change written to the database by hand) can cost: a revoked
 * token is refused at the latest this long after the change.
 */
export const VIEWER_MEMORY_TTL_MS = 5_000;
/**
 * How long a viewer lives in the shared (Redis) cache. Revocations bump the token's generation
 * there before the signal goes out, so this only bounds a change nobody announced.
 */
export const VIEWER_SHARED_TTL_SECONDS = 60;
/** `api_tokens.last_used_at` is written at most this often per token and instance. */
export const LAST_USED_RESOLUTION_MS = 60_000;
const MAX_MEMORY_ENTRIES = 10_000;

interface CachedViewer {
  viewer: Viewer;
  tokenId: string;
  /** Epoch ms of `last_used_at` when loaded; null when never used. */
  lastUsedAt: number | null;
}

const tokenTag = (tokenHash: string) => `token:${tokenHash}`;

/**
 * Viewers by token hash, so a warm authenticated request runs no SQL for its token: in this
 * process (VIEWER_MEMORY_TTL_MS) in front of the shared cache (VIEWER_SHARED_TTL_SECONDS, tagged
 * `token:<hash>`) in front of Postgres. Unknown and revoked tokens are never cached: each costs a
 * statement. Entries are dropped by `drop` (fed by ViewerStreams.onViewerChanged on every
 * instance) and `invalidateShared` (by the instance that made the change, before it signals).
 */
export class ViewerCache {
  readonly #memory = new LRUCache<string, CachedViewer>({
    max: MAX_MEMORY_ENTRIES,
    ttl: VIEWER_MEMORY_TTL_MS,
  });
  /** When this instance last wrote (or saw) each token's last_used_at; outlives memory entries. */
  readonly #lastUsed = new LRUCache<string, number>({ max: MAX_MEMORY_ENTRIES });
  /** Bumped by every drop: a lookup that started before one must not store what it read. */
  #epoch = 0;
  /** Whether changes reach this instance (its `viewerChanged` subscription is confirmed). */
  #signalled = false;
  /**
   * Loads under way by token hash, with the epoch they started in. Five thousand graphql-ws
   * clients of one token connecting at once each missed the cold cache and read the token: the
   * pool's ten connections queued the reads past its connect timeout. Concurrent lookups of one
   * token now share one read; a lookup after a drop starts its own, so a revoked token is never
   * served from a read that began before its revocation.
   */
  readonly #loading = new Map<string, { epoch: number; load: Promise<CachedViewer | null> }>();

  constructor(private readonly deps: { db: Db; cache: Cache | undefined; logger: Logger }) {}

  /**
   * The viewer a live token speaks for, or null for an unknown or revoked one. `db` is the
   * request's (counting) database; last_used_at is written there when due (LAST_USED_RESOLUTION_MS).
   */
  async find(db: Db, tokenHash: string): Promise<Viewer | null> {
    const epoch = this.#epoch;
    let cached = this.#memory.get(tokenHash) ?? null;
    if (!cached) {
      cached = await this.#sharedLoad(db, tokenHash, epoch);
      if (!cached) return null;
      // Kept in memory only while changes reach this instance, and only if none landed meanwhile.
      if (this.#signalled && epoch === this.#epoch) this.#memory.set(tokenHash, cached);
    }
    await this.#markUsed(db, tokenHash, cached);
    return cached.viewer;
  }

  /** Drops this process's entries for a change (one token, or every token of a user). */
  drop(change: ViewerChangedMessage): void {
    this.#epoch += 1;
    if (change.tokenHash) {
      this.#memory.delete(change.tokenHash);
      return;
    }
    // A role change is rare: a scan of the bounded map beats keeping an index by user.
    for (const [hash, entry] of this.#memory.entries()) {
      if (entry.viewer.id === change.userId) this.#memory.delete(hash);
    }
  }

  /**
   * Called by ViewerStreams once its subscription is confirmed (true) and whenever the feed
   * reconnects (false, then true again): changes published while it was away are lost, so
   * everything kept so far is dropped.
   */
  setSignalled(signalled: boolean): void {
    this.#signalled = signalled;
    if (!signalled) {
      this.#epoch += 1;
      this.#memory.clear();
    }
  }

  /**
   * Drops a committed change's entries from the shared cache; the changing instance awaits this
   * before it signals, so an instance that drops its own entry on the signal cannot reload the
   * old one from the shared cache. A failure is handled by the cache (it renews its namespace).
   */
  async invalidateShared(change: ViewerChangedMessage): Promise<void> {
    const cache = this.deps.cache;
    if (!cache) return;
    const hashes = change.tokenHash
      ? [change.tokenHash]
      : await liveTokenHashesOfUser(this.deps.db, change.userId);
    await cache.invalidate(hashes.map(tokenTag));
  }

  /** `#load`, joined by the lookups of the same token in the same epoch while it runs. */
  #sharedLoad(db: Db, tokenHash: string, epoch: number): Promise<CachedViewer | null> {
    const running = this.#loading.get(tokenHash);
    if (running?.epoch === epoch) return running.load;
    const load = this.#load(db, tokenHash).finally(() => {
      if (this.#loading.get(tokenHash)?.load === load) this.#loading.delete(tokenHash);
    });
    this.#loading.set(tokenHash, { epoch, load });
    return load;
  }

  async #load(db: Db, tokenHash: string): Promise<CachedViewer | null> {
    const fromDb = async () => {
      const row = await viewerByTokenHash(db, tokenHash);
      return row
        ? {
            viewer: { id: row.id, role: row.role },
            tokenId: row.tokenId,
            lastUsedAt: row.last_used_at ? timestampMillis(row.last_used_at) : null,
          }
        : null;
    };
    const cache = this.deps.cache;
    if (!cache) return fromDb();
    const key = `viewer:${tokenHash}`;
    const found = await cache.getOrLoad<CachedViewer>([key], {
      name: 'viewer',
      ttlSeconds: VIEWER_SHARED_TTL_SECONDS,
      tagsOf: () => [tokenTag(tokenHash)],
      load: async () => {
        const loaded = await fromDb();
        return new Map(loaded ? [[key, loaded]] : []);
      },
    });
    return found.get(key) ?? null;
  }

  // Awaited, so a request that finds the token stale has marked it before it answers.
  async #markUsed(db: Db, tokenHash: string, cached: CachedViewer): Promise<void> {
    const now = Date.now();
    const last = Math.max(cached.lastUsedAt ?? 0, this.#lastUsed.get(tokenHash) ?? 0);
    if (last >= now - LAST_USED_RESOLUTION_MS) return;
    this.#lastUsed.set(tokenHash, now);
    await markTokenUsed(db, cached.tokenId);
  }
}
