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

interface CacheBackend {
  /** `generations: null` means nothing may be stored (caching disabled). */
  read(
    keys: readonly string[],
    tags: readonly string[],
  ): Promise<{ values: (string | null)[]; generations: GenerationSnapshot | null }>;
  write(
    entries: readonly CacheEntry[],
    ttlSeconds: number,
    generations: GenerationSnapshot,
  ): Promise<void>;
  invalidate(tags: readonly string[]): Promise<void>;
}

/**
 * Fills a missing entry only if none of its tags was invalidated since the read that missed:
 * otherwise a reader that loaded the old row before a write committed could store it after the
 * invalidation, and serve it until the TTL.
 */
const WRITE_IF_FRESH = `
local ttl = tonumber(ARGV[1])
local tagCount = tonumber(ARGV[2])
for i = 1, tagCount do
  local current = redis.call('GET', ARGV[2 + (i - 1) * 2 + 1]) or '0'
  if current ~= ARGV[2 + (i - 1) * 2 + 2] then return 0 end
end
local offset = 2 + tagCount * 2
local i = offset + 1
while i <= #ARGV do
  local key = ARGV[i]
  local value = ARGV[i + 1]
  local entryTagCount = tonumber(ARGV[i + 2])
  redis.call('SET', key, value, 'EX', ttl)
  for t = 1, entryTagCount do
    local tagSet = ARGV[i + 2 + t]
    redis.call('SADD', tagSet, key)
    redis.call('EXPIRE', tagSet, ttl)
  end
  i = i + 3 + entryTagCount
end
return 1
`;

/**
 * Reads entries of the current namespace (ARGV[1] names its counter, ARGV[2] is the key prefix,
 * ARGV[3] the entry count, then the entries, then generation counters). Returns the namespace,
 * then one value per entry and per counter.
 */
const READ = `
local namespace = redis.call('GET', ARGV[1]) or '0'
local entryCount = tonumber(ARGV[3])
local result = { namespace }
for i = 4, #ARGV do
  local key = ARGV[i]
  if i < 4 + entryCount then key = ARGV[2] .. namespace .. ':' .. key end
  result[#result + 1] = redis.call('GET', key)
end
return result
`;

/** Bumps each tag's generation and deletes the keys filed under it. */
const INVALIDATE = `
for i = 1, #ARGV do
  redis.call('INCR', ARGV[i] .. ':gen')
  local members = redis.call('SMEMBERS', ARGV[i] .. ':keys')
  for j = 1, #members, 500 do
    redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', ARGV[i] .. ':keys')
end
return 1
`;

type ScriptedRedis = RedisClient & {
  quireCacheRead(...args: string[]): Promise<(string | null)[]>;
  quireWriteIfFresh(...args: string[]): Promise<number>;
  quireInvalidate(...args: string[]): Promise<number>;
};

/**
 * Entries live under a namespace (`<prefix>c<namespace>:<key>`). An invalidation that fails
 * (Redis unreachable) leaves entries that may be stale for every instance; instead of finding
 * them, the next successful contact renews the namespace, which orphans every entry at once (they
 * expire with their TTL). Renewing is one INCR where a SCAN of the keyspace would take seconds on
 * a large Redis; it is read in the same script as the entries, so every instance sees it on its
 * next read, and it guards writes, so a fill computed before the renewal is not stored after it.
 */
class RedisBackend implements CacheBackend {
  private readonly tagKey = (tag: string) => `${this.prefix}tag:${tag}`;
  private readonly namespaceKey: string;
  private readonly redis: ScriptedRedis;
  private failedInvalidations = 0;
  private renewedThrough = 0;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly breaker: CircuitBreaker,
  ) {
    this.namespaceKey = `${prefix}cache-namespace`;
    redis.defineCommand('quireCacheRead', { numberOfKeys: 0, lua: READ });
    redis.defineCommand('quireWriteIfFresh', { numberOfKeys: 0, lua: WRITE_IF_FRESH });
    redis.defineCommand('quireInvalidate', { numberOfKeys: 0, lua: INVALIDATE });
    this.redis = redis as ScriptedRedis;
    // Renew as soon as Redis is back, not at this instance's next read: other instances read too.
    const renew = () => void this.renewNamespaceIfInvalidationFailed().catch(() => {});
    redis.on('ready', renew);
    breaker.onRecovery(renew);
  }

  async read(keys: readonly string[], tags: readonly string[]) {
    await this.renewNamespaceIfInvalidationFailed();
    const generationKeys = tags.map((tag) => `${this.tagKey(tag)}:gen`);
    const [namespace, ...raw] = await this.breaker.run(() =>
      this.redis.quireCacheRead(
        this.namespaceKey,
        `${this.prefix}c`,
        String(keys.length),
        ...keys,
        ...generationKeys,
      ),
    );
    const generations: GenerationSnapshot = { [this.namespaceKey]: namespace ?? '0' };
    generationKeys.forEach((key, index) => {
      generations[key] = raw[keys.length + index] ?? '0';
    });
    return { values: raw.slice(0, keys.length), generations };
  }

  async write(entries: readonly CacheEntry[], ttlSeconds: number, generations: GenerationSnapshot) {
    const guards = Object.entries(generations).flat();
    const entryPrefix = `${this.prefix}c${generations[this.namespaceKey]}:`;
    const payload = entries.flatMap((entry) => [
      entryPrefix + entry.key,
      JSON.stringify(entry.value),
      String(entry.tags.length),
      ...entry.tags.map((tag) => `${this.tagKey(tag)}:keys`),
    ]);
    await this.breaker.run(() =>
      this.redis.quireWriteIfFresh(
        String(ttlSeconds),
        String(guards.length / 2),
        ...guards,
        ...payload,
      ),
    );
  }

  async invalidate(tags: readonly string[]) {
    try {
      await this.breaker.run(() => this.redis.quireInvalidate(...tags.map(this.tagKey)));
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

/** The embedded default: one process, so a bounded LRU with the same tag semantics. */
class MemoryBackend implements CacheBackend {
  private readonly entries: LRUCache<string, { value: string; tags: readonly string[] }>;
  private readonly generations = new Map<string, number>();
  private readonly keysByTag = new Map<string, Set<string>>();

  constructor(maxEntries: number) {
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
    return {
      values: keys.map((key) => this.entries.get(key)?.value ?? null),
      generations: Object.fromEntries(
        tags.map((tag) => [tag, String(this.generations.get(tag) ?? 0)]),
      ),
    };
  }

  async write(entries: readonly CacheEntry[], ttlSeconds: number, generations: GenerationSnapshot) {
    for (const [tag, generation] of Object.entries(generations)) {
      if (String(this.generations.get(tag) ?? 0) !== generation) return;
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
    for (const tag of tags) {
      this.generations.set(tag, (this.generations.get(tag) ?? 0) + 1);
      for (const key of this.keysByTag.get(tag) ?? []) this.entries.delete(key);
      this.keysByTag.delete(tag);
    }
  }
}

export interface CacheReadOptions<Value> {
  /** Names the cache in statistics: 'post', 'user', 'tagCloud'… */
  name: string;
  ttlSeconds: number;
  tagsOf: (key: string) => readonly string[];
  load: (missingKeys: string[]) => Promise<Map<string, Value>>;
  stats?: CacheStats;
}

/**
 * A shared second-level cache. Reads fall back to the loader on any cache error: an unreachable
 * Redis makes requests slower, never failing.
 */
export class Cache {
  readonly totals: CacheStats = {};

  constructor(
    private readonly backend: CacheBackend,
    private readonly logger: Logger,
    readonly kind: 'redis' | 'memory' | 'disabled',
  ) {}

  /** Looks up `keys`, loads the misses, stores them guarded by the generations seen. */
  async getOrLoad<Value>(
    keys: readonly string[],
    options: CacheReadOptions<Value>,
  ): Promise<Map<string, Value>> {
    const found = new Map<string, Value>();
    if (keys.length === 0) return found;
    const tags = [...new Set(keys.flatMap(options.tagsOf))];
    let generations: GenerationSnapshot | null = null;
    try {
      const read = await this.backend.read(keys, tags);
      generations = read.generations;
      read.values.forEach((value, index) => {
        if (value !== null) found.set(keys[index]!, JSON.parse(value) as Value);
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
   * Entities by id (`name:id`, tagged `name:id`), in key order, null for missing ids. Rows are
   * cached as stored; visibility is decided after loading, per viewer, so no key needs it.
   */
  async rowsByIds<Row extends { id: string }>(
    name: string,
    ids: readonly string[],
    fetch: (ids: string[]) => Promise<Row[]>,
    options: { ttlSeconds: number; stats?: CacheStats },
  ): Promise<(Row | null)[]> {
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
   * Call after the write committed. A failure is logged and counted; the Redis backend then
   * renews its namespace before it serves anything again.
   */
  async invalidate(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    try {
      await this.backend.invalidate([...new Set(tags)]);
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
    for (const stats of options.stats ? [this.totals, options.stats] : [this.totals]) {
      stats[options.name] ??= { hits: 0, misses: 0, errors: 0 };
      stats[options.name]![field] += by;
    }
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

export function createDisabledCache(logger: Logger): Cache {
  return new Cache(new DisabledBackend(), logger, 'disabled');
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

export function createMemoryCache(maxEntries: number, logger: Logger): Cache {
  return new Cache(new MemoryBackend(maxEntries), logger, 'memory');
}
