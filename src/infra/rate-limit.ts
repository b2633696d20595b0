import { randomBytes } from 'node:crypto';
import { getFieldIdentity, getGraphQLRateLimiter, type Identity, Store } from 'graphql-rate-limit';
import type { Redis } from 'ioredis';
import { appError } from '../errors.ts';

const PENDING = Symbol('pending calls');
type TrackedIdentity = Identity & { [PENDING]?: { members: string[]; previous: number } };

/**
 * graphql-rate-limit reads the window, decides, then writes it back: two round trips, so
 * concurrent calls all see the same count and all pass. These stores record the call in the read
 * itself (one atomic step), so the count a call sees includes every call before it; the write
 * only un-records a rejected call (uncountRejected).
 */
abstract class RecordingStore extends Store {
  protected abstract record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
  ): Promise<number[]>;
  protected abstract unrecord(key: string, members: string[]): Promise<void>;
  abstract oldest(key: string): Promise<number | null>;
  private nextCallCount = 1;

  constructor(private readonly windowMs: number) {
    super();
  }

  static key(identity: Identity): string {
    return `${identity.contextIdentity}:${identity.fieldIdentity}`;
  }

  /**
   * How many calls the next read records. graphql-rate-limit reaches getForIdentity synchronously
   * after it is invoked, so setting this right before invoking it cannot leak to another call.
   */
  expectCalls(count: number): void {
    this.nextCallCount = count;
  }

  override async getForIdentity(identity: TrackedIdentity): Promise<readonly number[]> {
    const call = randomBytes(6).toString('hex');
    const members = Array.from({ length: this.nextCallCount }, (_, index) => `${call}:${index}`);
    this.nextCallCount = 1;
    const key = RecordingStore.key(identity);
    const previous = await this.record(key, members, Date.now(), this.windowMs);
    identity[PENDING] = { members, previous: previous.length };
    return previous;
  }

  override async setForIdentity(
    identity: TrackedIdentity,
    timestamps: readonly number[],
  ): Promise<void> {
    const pending = identity[PENDING];
    if (pending && timestamps.length <= pending.previous) {
      await this.unrecord(RecordingStore.key(identity), pending.members);
    }
  }
}

/** Sliding window in a sorted set; trim, read and record happen in one Lua script. */
const RECORD = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local previous = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return previous
`;

class RedisWindowStore extends RecordingStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    windowMs: number,
  ) {
    super(windowMs);
    redis.defineCommand('quireRateRecord', { numberOfKeys: 1, lua: RECORD });
  }

  protected async record(key: string, members: string[], now: number, windowMs: number) {
    const flat = await (
      this.redis as Redis & { quireRateRecord(...args: (string | number)[]): Promise<string[]> }
    ).quireRateRecord(`${this.prefix}rate:${key}`, now, windowMs, ...members);
    return flat.filter((_, index) => index % 2 === 1).map(Number);
  }

  protected async unrecord(key: string, members: string[]): Promise<void> {
    await this.redis.zrem(`${this.prefix}rate:${key}`, ...members);
  }

  async oldest(key: string): Promise<number | null> {
    const [, score] = await this.redis.zrange(`${this.prefix}rate:${key}`, 0, 0, 'WITHSCORES');
    return score === undefined ? null : Number(score);
  }
}

/** The embedded default: one process, and record() has no await between read and write. */
class MemoryWindowStore extends RecordingStore {
  private readonly windows = new Map<string, Map<string, number>>();

  protected async record(key: string, members: string[], now: number, windowMs: number) {
    const window = this.windows.get(key) ?? new Map<string, number>();
    for (const [existing, at] of window) if (at <= now - windowMs) window.delete(existing);
    const previous = [...window.values()];
    for (const member of members) window.set(member, now);
    this.windows.set(key, window);
    return previous;
  }

  protected async unrecord(key: string, members: string[]): Promise<void> {
    for (const member of members) this.windows.get(key)?.delete(member);
  }

  async oldest(key: string): Promise<number | null> {
    const times = [...(this.windows.get(key)?.values() ?? [])];
    return times.length > 0 ? Math.min(...times) : null;
  }
}

export interface RateLimitRule {
  max: number;
  windowMs: number;
}

export interface RateLimitCounters {
  rejected: number;
}

/**
 * Named budgets (`mutation`, `startPipeline`, `searchPosts`) per client key: the viewer, or the IP
 * for anonymous requests. Over the limit: RATE_LIMITED with `retryAfter` seconds.
 */
export class RateLimiter {
  readonly counters: RateLimitCounters = { rejected: 0 };
  private readonly store: RecordingStore;
  private readonly limiter: ReturnType<typeof getGraphQLRateLimiter>;

  constructor(
    private readonly rules: Readonly<Record<string, RateLimitRule>>,
    redis: { client: Redis; prefix: string } | undefined,
  ) {
    const windowMs = Math.max(...Object.values(rules).map((rule) => rule.windowMs));
    this.store = redis
      ? new RedisWindowStore(redis.client, redis.prefix, windowMs)
      : new MemoryWindowStore(windowMs);
    this.limiter = getGraphQLRateLimiter({
      identifyContext: (clientKey: string) => clientKey,
      store: this.store,
    });
  }

  /** Charges `calls` against the bucket or throws RATE_LIMITED. */
  async consume(clientKey: string, bucket: string, calls = 1): Promise<void> {
    const rule = this.rules[bucket];
    if (!rule) throw new Error(`no rate limit rule named ${bucket}`);
    this.store.expectCalls(calls);
    const rejection = await this.limiter(
      {
        parent: undefined,
        args: { calls: Array.from({ length: calls }) },
        context: clientKey,
        info: { fieldName: bucket } as never,
      },
      {
        max: rule.max,
        window: `${rule.windowMs}ms`,
        arrayLengthField: 'calls',
        uncountRejected: true,
      },
    );
    if (!rejection) return;
    this.counters.rejected += 1;
    const oldest = await this.store.oldest(
      RecordingStore.key({
        contextIdentity: clientKey,
        fieldIdentity: getFieldIdentity(bucket, [], {}),
      }),
    );
    const retryAfter = Math.max(
      1,
      Math.ceil(((oldest ?? Date.now()) + rule.windowMs - Date.now()) / 1000),
    );
    throw appError('RATE_LIMITED', `Too many ${bucket} requests; retry in ${retryAfter} s`, {
      retryAfter,
    });
  }
}
