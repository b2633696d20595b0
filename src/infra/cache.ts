import { LRUCache } from 'lru-cache';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';

/** Per cache name, since process start (metrics) or for one request (debug extensions). */
export type CacheStats = Record<string, { hits: number; misses: number; errors: number }>;

export interface CacheEntry {
  key: string;
  value: unknown;
  /** Invalidating any of these tags drops the entry. */
  tags: readonly string[];
}

/**
 * What a read saw of the generations guarding its entries (keyed as the backend names them); a
 * later write is dropped if any moved on.
 */
export type GenerationSnapshot = Record<string, string>;

/** `generations: null` means nothing may be stored (caching disabled). */
interface BackendRead {
  /** Per key: its value; null if none or stale; undefined if damaged (a fill stores over it). */
  values: (string | null | undefined)[];
  generations: GenerationSnapshot | null;
}

interface CacheBackend {
  read(keys: readonly string[], tags: readonly string[]): Promise<BackendRead>;
  write(
    entries: readonly CacheEntry[],
    ttlSeconds: number,
    generations: GenerationSnapshot,
  ): Promise<void>;
  invalidate(tags: readonly string[]): Promise<void>;
}

/**
 * Stores fills only if no guard (the namespace, each tag's generation) moved since the read that
 * missed: otherwise a reader that loaded the old row before a write committed could store it
 * after the invalidation. KEYS: the guards, then the entries; ARGV: the TTL, the guard count, one
 * value per guard, one value per entry.
 */
const WRITE_IF_FRESH = `
local ttl = tonumber(ARGV[1])
local guards = tonumber(ARGV[2])
for i = 1, guards do
  if (redis.call('GET', KEYS[i]) or '0') ~= ARGV[2 + i] then return 0 end
end
for i = guards + 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 + i], 'EX', ttl)
end
return 1
`;

/** Bumps the generation of every tag in KEYS at once. */
const INVALIDATE = `
for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end
return 1
`;

interface PendingRead {
  keys: readonly string[];
  tags: readonly string[];
  resolve(read: BackendRead): void;
  reject(error: unknown): void;
}

type ScriptedRedis = RedisClient & {
  quireWriteIfFresh(numberOfKeys: number, ...args: string[]): Promise<number>;
  quireInvalidate(numberOfKeys: number, ...keys: string[]): Promise<number>;
};

/**
 * Every key lives under one hash tag (`<prefix>{cache}:…`), so the multi-key read and scripts
 * work on a Redis Cluster (one slot, one master: a cluster gives the cache failover, not
 * sharding) and every key a script touches is declared, as Cluster and key ACLs require.
 *
 * Each entry carries the generation of each of its tags when it was loaded, and a read serves it
 * only while all still match: invalidating is one INCR per tag, and a fill that raced with it is
 * never served (nor stored, see WRITE_IF_FRESH).
 *
 * Entries live under a namespace (`…:e<namespace>:<key>`). An invalidation that fails (Redis
 * unreachable) leaves entries that may be stale for every instance; the next successful contact
 * renews the namespace instead, which orphans every entry at once (they expire with their TTL):
 * one INCR where a SCAN of the keyspace would take seconds. Reads fetch the namespace with the
 * entries, so every instance sees a renewal on its next read; writes are guarded by it.
 */
class RedisBackend implements CacheBackend {
  private readonly slot: string;
  private readonly namespaceKey: string;
  private readonly redis: ScriptedRedis;
  /** The namespace of the last read: entries are looked up under it, and dropped if it moved. */
  private namespace = '0';
  private failedInvalidations = 0;
  private renewedThrough = 0;
  /** Reads asked for in this turn of the event loop, sent together at its end. */
  private pendingReads: PendingRead[] = [];

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly logger: Logger,
    private readonly breaker: CircuitBreaker,
  ) {
    this.slot = `${prefix}{cache}:`;
    this.namespaceKey = `${this.slot}namespace`;
    redis.defineCommand('quireWriteIfFresh', { lua: WRITE_IF_FRESH });
    redis.defineCommand('quireInvalidate', { lua: INVALIDATE });
    this.redis = redis as ScriptedRedis;
    // Renew as soon as Redis is back, not at this instance's next read: other instances read too.
    const renew = () => void this.renewNamespaceIfInvalidationFailed().catch(() => {});
    redis.on('ready', renew);
    breaker.onRecovery(renew);
  }

  private generationKey(tag: string): string {
    return `${this.slot}gen:${tag}`;
  }

  private entryKey(namespace: string, key: string): string {
    return `${this.slot}e${namespace}:${key}`;
  }

  /**
   * Reads made in the same turn of the event loop (concurrent requests, a request's loaders) go
   * out together as one MGET at its end: one write and one reply for the lot instead of a round
   * trip each, whose socket calls dominated a cached response's CPU. Each read is still sent
   * after it was asked for, so it sees every invalidation that finished before.
   */
  read(keys: readonly string[], tags: readonly string[]): Promise<BackendRead> {
    return new Promise((resolve, reject) => {
      if (this.pendingReads.length === 0) setImmediate(() => void this.sendReads());
      this.pendingReads.push({ keys, tags, resolve, reject });
    });
  }

  /** One MGET for every pending read: the namespace, then each distinct entry and guard key. */
  private async sendReads(): Promise<void> {
    const reads = this.pendingReads;
    this.pendingReads = [];
    const requested = [this.namespaceKey];
    const positions = new Map<string, number>([[this.namespaceKey, 0]]);
    const position = (key: string) => {
      let index = positions.get(key);
      if (index === undefined) {
        index = requested.push(key) - 1;
        positions.set(key, index);
      }
      return index;
    };
    let namespace: string;
    let layouts: { entries: number[]; guards: string[] }[];
    let raw: (string | null)[];
    try {
      await this.renewNamespaceIfInvalidationFailed();
      namespace = this.namespace;
      layouts = reads.map((read) => ({
        entries: read.keys.map((key) => position(this.entryKey(namespace, key))),
        guards: read.tags.map((tag) => this.generationKey(tag)),
      }));
      for (const layout of layouts) for (const guard of layout.guards) position(guard);
      raw = await this.breaker.run(() => this.redis.mget(requested));
      this.namespace = raw[0] ?? '0';
    } catch (error) {
      for (const read of reads) read.reject(error);
      return;
    }
    // Each read on its own: an entry that fails to decode fails its own read only.
    reads.forEach((read, index) => {
      try {
        const { entries, guards } = layouts[index]!;
        const generations: GenerationSnapshot = { [this.namespaceKey]: this.namespace };
        for (const guard of guards) generations[guard] = raw[positions.get(guard)!] ?? '0';
        const values =
          this.namespace === namespace
            ? entries.map((entry) => RedisBackend.currentValue(raw[entry] ?? null, generations))
            : entries.map(() => null);
        read.resolve({ values, generations });
      } catch (error) {
        read.reject(error);
      }
    });
  }

  /**
   * An entry is `<JSON of its tags' generations>\n<JSON value>` (JSON never holds a raw newline).
   * A damaged one (no stamp that parses to an object) is undefined: the reader counts an error
   * and the fill that follows stores over it. Failing the whole read instead would skip the cache
   * for that request, and every later one until the entry's TTL.
   */
  private static currentValue(
    entry: string | null,
    generations: GenerationSnapshot,
  ): string | null | undefined {
    if (entry === null) return null;
    const newline = entry.indexOf('\n');
    if (newline < 0) return undefined;
    let stamp: unknown;
    try {
      stamp = JSON.parse(entry.slice(0, newline));
    } catch {
      return undefined;
    }
    if (typeof stamp !== 'object' || stamp === null) return undefined;
    const current = Object.entries(stamp).every(([key, seen]) => generations[key] === seen);
    return current ? entry.slice(newline + 1) : null;
  }

  async write(entries: readonly CacheEntry[], ttlSeconds: number, generations: GenerationSnapshot) {
    const guardKeys = Object.keys(generations);
    const namespace = generations[this.namespaceKey] ?? '0';
    const stamped = entries.map((entry) => {
      const stamp = Object.fromEntries(
        entry.tags.map((tag) => [
          this.generationKey(tag),
          generations[this.generationKey(tag)] ?? '0',
        ]),
      );
      return `${JSON.stringify(stamp)}\n${JSON.stringify(entry.value)}`;
    });
    await this.breaker.run(() =>
      this.redis.quireWriteIfFresh(
        guardKeys.length + entries.length,
        ...guardKeys,
        ...entries.map((entry) => this.entryKey(namespace, entry.key)),
        String(ttlSeconds),
        String(guardKeys.length),
        ...guardKeys.map((key) => generations[key]!),
        ...stamped,
      ),
    );
  }

  async invalidate(tags: readonly string[]) {
    try {
      const keys = tags.map((tag) => this.generationKey(tag));
      await this.breaker.run(() => this.redis.quireInvalidate(keys.length, ...keys));
    } catch (error) {
      this.failedInvalidations += 1;
      throw error;
    }
  }

  /** Concurrent callers may renew twice: that only drops entries again, never serves stale ones. */
  private async renewNamespaceIfInvalidationFailed(): Promise<void> {
    while (this.renewedThrough < this.failedInvalidations) {
      const through = this.failedInvalidations;
      await this.breaker.run(() => this.redis.incr(this.namespaceKey));
      this.renewedThrough = Math.max(this.renewedThrough, through);
      this.logger.info(
        { failedInvalidations: through },
        'cache namespace renewed: entries from before the failed invalidations are no longer served',
      );
    }
  }
}

/**
 * What an in-process cache hears from other processes writing the same database (without Redis,
 * over Postgres LISTEN/NOTIFY, see cache-notifications.ts and pg-listener.ts).
 */
export interface InvalidationFeed {
  /** Applies tags another process invalidated after its commit. */
  apply(tags: readonly string[]): void;
  /** Drops every entry and every fill in progress (a migration, or a reconnected feed). */
  renew(): void;
  /**
   * While the feed is down other processes' writes go unheard: entries are renewed and nothing is
   * served or stored until `resume`.
   */
  pause(): void;
  resume(): void;
}

/** The embedded default: one process, so a bounded LRU with the same tag semantics. */
class MemoryBackend implements CacheBackend, InvalidationFeed {
  private readonly entries: LRUCache<string, { value: string; tags: readonly string[] }>;
  private readonly generations = new Map<string, number>();
  private readonly keysByTag = new Map<string, Set<string>>();
  /** Guards every fill as a tag's generation guards its entries: renewing drops fills in flight. */
  private namespace = 0;
  private live: boolean;

  constructor(maxEntries: number, live: boolean) {
    this.live = live;
    this.entries = new LRUCache({
      max: maxEntries,
      maxSize: maxEntries * 4096,
      sizeCalculation: (entry) => entry.value.length || 1,
      // Evicted or expired keys leave the tag index too, so it stays bounded with the entries.
      dispose: (entry, key) => {
        for (const tag of entry.tags) this.keysByTag.get(tag)?.delete(key);
      },
    });
  }

  async read(keys: readonly string[], tags: readonly string[]) {
    if (!this.live) return { values: keys.map(() => null), generations: null };
    const generations: GenerationSnapshot = { namespace: String(this.namespace) };
    for (const tag of tags) generations[`tag:${tag}`] = String(this.generations.get(tag) ?? 0);
    return { values: keys.map((key) => this.entries.get(key)?.value ?? null), generations };
  }

  async write(entries: readonly CacheEntry[], ttlSeconds: number, generations: GenerationSnapshot) {
    if (!this.live || generations.namespace !== String(this.namespace)) return;
    for (const [key, generation] of Object.entries(generations)) {
      if (!key.startsWith('tag:')) continue;
      if (String(this.generations.get(key.slice(4)) ?? 0) !== generation) return;
    }
    for (const entry of entries) {
      this.entries.set(
        entry.key,
        { value: JSON.stringify(entry.value), tags: entry.tags },
        { ttl: ttlSeconds * 1000 },
      );
      for (const tag of entry.tags) {
        const keys = this.keysByTag.get(tag) ?? new Set<string>();
        keys.add(entry.key);
        this.keysByTag.set(tag, keys);
      }
    }
  }

  async invalidate(tags: readonly string[]) {
    this.apply(tags);
  }

  apply(tags: readonly string[]) {
    for (const tag of tags) {
      this.generations.set(tag, (this.generations.get(tag) ?? 0) + 1);
      for (const key of this.keysByTag.get(tag) ?? []) this.entries.delete(key);
      this.keysByTag.delete(tag);
    }
  }

  renew() {
    this.namespace += 1;
    this.entries.clear();
    this.keysByTag.clear();
  }

  pause() {
    this.live = false;
    this.renew();
  }

  resume() {
    this.renew();
    this.live = true;
  }
}

/** Other processes sharing the database, told of each invalidation after it applied here. */
export interface InvalidationPeers {
  publish(tags: readonly string[]): Promise<void>;
}

export interface CacheReadOptions<Value> {
  /** Names the cache in statistics: 'post', 'user', 'tagCloud'… */
  name: string;
  ttlSeconds: number;
  tagsOf: (key: string) => readonly string[];
  load: (missingKeys: string[]) => Promise<Map<string, Value>>;
  /** Builds a found value from its stored JSON text; JSON.parse unless given. */
  decode?: (json: string) => Value;
  stats?: CacheStats;
}

/** Tags invalidated together, and the round that sends them. */
interface InvalidationBatch {
  tags: Set<string>;
  sent: Promise<void>;
}

/**
 * A shared second-level cache. Reads fall back to the loader on any cache error: an unreachable
 * Redis makes requests slower, never failing.
 */
export class Cache {
  readonly totals: CacheStats = {};
  /** Tags of the invalidation not sent yet (it waits for `lastSent`). */
  private queued: InvalidationBatch | undefined;
  private lastSent: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: CacheBackend,
    private readonly logger: Logger,
    readonly kind: 'redis' | 'memory' | 'disabled',
    private readonly peers?: InvalidationPeers,
  ) {}

  /** Looks up `keys`, loads the misses, stores them guarded by the generations seen. */
  async getOrLoad<Value>(
    keys: readonly string[],
    options: CacheReadOptions<Value>,
  ): Promise<Map<string, Value>> {
    const found = new Map<string, Value>();
    if (keys.length === 0) return found;
    // CACHE=off: nothing to read or store, so no round through the backend, no tags, no copies.
    if (this.kind === 'disabled') {
      this.count(options, 'misses', keys.length);
      return options.load([...keys]);
    }
    const tags = [...new Set(keys.flatMap(options.tagsOf))];
    let generations: GenerationSnapshot | null = null;
    const decode = options.decode ?? ((json: string) => JSON.parse(json) as Value);
    try {
      const read = await this.backend.read(keys, tags);
      generations = read.generations;
      read.values.forEach((value, index) => {
        // Damaged: loaded and stored over below, like a miss, but counted as an error.
        if (value === undefined) this.count(options, 'errors', 1);
        else if (value !== null) found.set(keys[index]!, decode(value));
      });
    } catch (error) {
      this.count(options, 'errors', 1);
      this.logger.debug(
        { err: (error as Error).message, cache: options.name },
        'cache read failed',
      );
    }
    this.count(options, 'hits', found.size);
    const missing = keys.filter((key) => !found.has(key));
    if (missing.length === 0) return found;
    this.count(options, 'misses', missing.length);
    const loaded = await options.load(missing);
    for (const [key, value] of loaded) found.set(key, value);
    if (generations && loaded.size > 0) {
      const entries = [...loaded].map(([key, value]) => ({
        key,
        value,
        tags: options.tagsOf(key),
      }));
      await this.backend.write(entries, options.ttlSeconds, generations).catch((error: unknown) => {
        this.count(options, 'errors', 1);
        this.logger.debug(
          { err: (error as Error).message, cache: options.name },
          'cache write failed',
        );
      });
    }
    return found;
  }

  /**
   * The current stored value of `key` (guarded by `tags`), read the way getOrLoad reads it but
   * neither loading nor storing: null on a miss or an entry that does not decode (not counted:
   * the caller then goes through getOrLoad, which counts it), undefined when the backend failed
   * (counted as an error), so the caller can skip the cache instead of waiting on it twice.
   */
  async find<Value>(
    key: string,
    options: Pick<CacheReadOptions<Value>, 'name' | 'decode' | 'stats'> & {
      tags: readonly string[];
    },
  ): Promise<Value | null | undefined> {
    if (this.kind === 'disabled') return null;
    let stored: string | null;
    try {
      stored = (await this.backend.read([key], options.tags)).values[0] ?? null;
    } catch (error) {
      this.count(options, 'errors', 1);
      this.logger.debug(
        { err: (error as Error).message, cache: options.name },
        'cache read failed',
      );
      return undefined;
    }
    if (stored === null) return null;
    let value: Value;
    try {
      value = options.decode ? options.decode(stored) : (JSON.parse(stored) as Value);
    } catch {
      return null;
    }
    this.count(options, 'hits', 1);
    return value;
  }

  /**
   * Entities by id (`name:id`, tagged `name:id`), in key order, null for missing ids. Rows are
   * cached as stored; visibility is decided after loading, per viewer, so no key needs it.
   */
  async rowsByIds<Row extends { id: string }>(
    name: string,
    ids: readonly string[],
    fetch: (ids: string[]) => Promise<Row[]>,
    options: { ttlSeconds: number; stats?: CacheStats },
  ): Promise<(Row | null)[]> {
    if (this.kind === 'disabled') {
      this.count({ name, stats: options.stats }, 'misses', ids.length);
      const byId = new Map((await fetch([...ids])).map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    }
    const prefix = `${name}:`;
    const found = await this.getOrLoad<Row>(
      ids.map((id) => prefix + id),
      {
        name,
        ttlSeconds: options.ttlSeconds,
        stats: options.stats,
        tagsOf: (key) => [key],
        load: async (keys) => {
          const rows = await fetch(keys.map((key) => key.slice(prefix.length)));
          return new Map(rows.map((row) => [prefix + row.id, row]));
        },
      },
    );
    return ids.map((id) => found.get(prefix + id) ?? null);
  }

  /** One computed value (an aggregate, a search page) under `key`, dropped when a tag changes. */
  async value<Value>(
    name: string,
    key: string,
    tags: readonly string[],
    compute: () => Promise<Value>,
    options: { ttlSeconds: number; stats?: CacheStats },
  ): Promise<Value> {
    const found = await this.getOrLoad<Value>([key], {
      name,
      ...options,
      tagsOf: () => tags,
      load: async () => new Map([[key, await compute()]]),
    });
    return found.get(key) as Value;
  }

  /**
   * Call after the write committed: drops entries under `tags` here and, without Redis, in every
   * process listening on the same database; resolves once that is done. A failure is logged and
   * counted; the Redis backend then renews its namespace before it serves anything again.
   *
   * Concurrent writers share round trips: calls made while an invalidation is on its way wait
   * for it to finish, then go out together as the next one (one script call, one NOTIFY). A
   * call never joins one already sent, which may have run before its write committed.
   */
  invalidate(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return Promise.resolve();
    let batch = this.queued;
    if (!batch) {
      const created: InvalidationBatch = { tags: new Set(), sent: Promise.resolve() };
      created.sent = this.lastSent.then(() => {
        if (this.queued === created) this.queued = undefined;
        return this.send([...created.tags]);
      });
      this.lastSent = created.sent;
      this.queued = batch = created;
    }
    for (const tag of tags) batch.tags.add(tag);
    return batch.sent;
  }

  /** One invalidation round: the backend, then the peers; never rejects. */
  private async send(tags: readonly string[]): Promise<void> {
    try {
      await this.backend.invalidate(tags);
      await this.peers?.publish(tags);
    } catch (error) {
      this.count({ name: 'invalidate' }, 'errors', 1);
      this.logger.warn({ err: (error as Error).message, tags }, 'cache invalidation failed');
    }
  }

  private count(
    options: { name: string; stats?: CacheStats },
    field: 'hits' | 'misses' | 'errors',
    by: number,
  ) {
    if (by === 0) return;
    Cache.add(this.totals, options.name, field, by);
    if (options.stats) Cache.add(options.stats, options.name, field, by);
  }

  private static add(
    stats: CacheStats,
    name: string,
    field: 'hits' | 'misses' | 'errors',
    by: number,
  ) {
    stats[name] ??= { hits: 0, misses: 0, errors: 0 };
    stats[name][field] += by;
  }
}

/** CACHE=off: every read misses and nothing is stored (benchmarks, loader-only tests). */
class DisabledBackend implements CacheBackend {
  async read(keys: readonly string[]) {
    return { values: keys.map(() => null), generations: null };
  }
  async write() {}
  async invalidate() {}
}

/** `peers` hear this process's invalidations although it caches nothing (other processes do). */
export function createDisabledCache(logger: Logger, peers?: InvalidationPeers): Cache {
  return new Cache(new DisabledBackend(), logger, 'disabled', peers);
}

/** Every Redis call goes through `breaker`: a silent Redis turns into misses, not waits. */
export function createRedisCache(
  redis: RedisClient,
  prefix: string,
  logger: Logger,
  breaker: CircuitBreaker,
): Cache {
  return new Cache(new RedisBackend(redis, prefix, logger, breaker), logger, 'redis');
}

/**
 * An LRU in this process. With `peers`, the cache starts paused: it serves and stores nothing
 * until the returned feed resumes it (once it hears other processes' invalidations).
 */
export function createMemoryCache(
  maxEntries: number,
  logger: Logger,
  peers?: InvalidationPeers,
): { cache: Cache; feed: InvalidationFeed } {
  const backend = new MemoryBackend(maxEntries, !peers);
  return { cache: new Cache(backend, logger, 'memory', peers), feed: backend };
}
