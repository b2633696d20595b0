import { randomBytes } from 'node:crypto';
import { getFieldIdentity, getGraphQLRateLimiter, type Identity, Store } from 'graphql-rate-limit';
import { appError } from '../errors.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';

const PENDING = Symbol('pending calls');
type TrackedIdentity = Identity & { [PENDING]?: { members: string[]; previous: number } };

/**
 * graphql-rate-limit reads the window, decides, then writes it back: two round trips, so
 * concurrent calls all see the same count and all pass. These stores record the call in the read
 * itself (one atomic step), so the count a call sees includes every call before it; the write
 * only un-records a rejected call (uncountRejected).
 */
abstract class RecordingStore extends Store {
  /**
   * Records `members` at `now` and returns how many calls were live in the window before them,
   * counted up to `cap`: the limiter needs no more to decide, and a count costs less to read and
   * hand back than the calls themselves.
   */
  protected abstract record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
    cap: number,
  ): Promise<number>;
  protected abstract unrecord(key: string, members: string[]): Promise<void>;
  /** The calls recorded under `key`, oldest first. */
  abstract timestamps(key: string): Promise<number[]>;
  private next = { calls: 1, cap: Number.POSITIVE_INFINITY };

  constructor(private readonly windowMs: number) {
    super();
  }

  static key(identity: Identity): string {
    return `${identity.contextIdentity}:${identity.fieldIdentity}`;
  }

  /**
   * How many calls the next read records, and the limit it is judged against. graphql-rate-limit
   * reaches getForIdentity synchronously after it is invoked, so setting this right before
   * invoking it cannot leak to another call.
   */
  expectCalls(calls: number, max: number): void {
    this.next = { calls, cap: max };
  }

  /**
   * graphql-rate-limit keeps the calls that are still in the window and compares their number
   * with the limit, so the live calls are handed back as that many copies of `now`: at most the
   * limit of them, since more cannot change the decision.
   */
  override async getForIdentity(identity: TrackedIdentity): Promise<readonly number[]> {
    const call = randomBytes(6).toString('hex');
    const { calls, cap } = this.next;
    this.next = { calls: 1, cap: Number.POSITIVE_INFINITY };
    const members = Array.from({ length: calls }, (_, index) => `${call}:${index}`);
    const now = Date.now();
    const live = await this.record(RecordingStore.key(identity), members, now, this.windowMs, cap);
    identity[PENDING] = { members, previous: live };
    return new Array<number>(live).fill(now);
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

/**
 * Sliding window in a sorted set; trim, count and record happen in one Lua script. ARGV: now,
 * window (ms), cap, then the members to record; returns the live calls before them, at most cap.
 */
const RECORD = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local live = redis.call('ZCARD', KEYS[1])
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return math.min(live, tonumber(ARGV[3]))
`;

class RedisWindowStore extends RecordingStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly breaker: CircuitBreaker,
    windowMs: number,
  ) {
    super(windowMs);
    redis.defineCommand('quireRateRecord', { numberOfKeys: 1, lua: RECORD });
  }

  protected async record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
    cap: number,
  ) {
    const scripted = this.redis as RedisClient & {
      quireRateRecord(...args: (string | number)[]): Promise<number>;
    };
    return this.breaker.run(() =>
      scripted.quireRateRecord(`${this.prefix}rate:${key}`, now, windowMs, cap, ...members),
    );
  }

  protected async unrecord(key: string, members: string[]): Promise<void> {
    await this.breaker.run(() => this.redis.zrem(`${this.prefix}rate:${key}`, ...members));
  }

  async timestamps(key: string): Promise<number[]> {
    const flat = await this.breaker.run(() =>
      this.redis.zrange(`${this.prefix}rate:${key}`, 0, -1, 'WITHSCORES'),
    );
    return flat.filter((_, index) => index % 2 === 1).map(Number);
  }
}

/**
 * The embedded default, and the fallback while Redis is unreachable: one process, and record()
 * has no await between read and write.
 */
class MemoryWindowStore extends RecordingStore {
  private readonly windows = new Map<string, Map<string, number>>();
  private lastSweep = 0;

  protected async record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
    cap: number,
  ) {
    this.sweep(now, windowMs);
    const window = this.windows.get(key) ?? new Map<string, number>();
    // Calls are kept in the order they came, so the expired ones are at the front.
    for (const [existing, at] of window) {
      if (at > now - windowMs) break;
      window.delete(existing);
    }
    const live = Math.min(window.size, cap);
    for (const member of members) window.set(member, now);
    this.windows.set(key, window);
    return live;
  }

  protected async unrecord(key: string, members: string[]): Promise<void> {
    for (const member of members) this.windows.get(key)?.delete(member);
  }

  async timestamps(key: string): Promise<number[]> {
    return [...(this.windows.get(key)?.values() ?? [])].sort((a, b) => a - b);
  }

  /** Once per window, drops clients whose calls all expired: one-off clients would pile up. */
  private sweep(now: number, windowMs: number): void {
    if (now - this.lastSweep < windowMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) {
      for (const [member, at] of window) if (at <= now - windowMs) window.delete(member);
      if (window.size === 0) this.windows.delete(key);
    }
  }
}

export interface RateLimitRule {
  max: number;
  windowMs: number;
}

export interface RateLimitCounters {
  rejected: number;
  /** Calls the shared (Redis) store failed, decided by this process's store instead. */
  storeErrors: number;
}

interface Window {
  store: RecordingStore;
  limiter: ReturnType<typeof getGraphQLRateLimiter>;
}

function windowOver(store: RecordingStore): Window {
  return {
    store,
    limiter: getGraphQLRateLimiter({ identifyContext: (clientKey: string) => clientKey, store }),
  };
}

/**
 * Named budgets (`mutation`, `startPipeline`, `searchPosts`) per client key: the viewer, or the IP
 * for anonymous requests. Over the limit: RATE_LIMITED with `retryAfter` seconds.
 *
 * With Redis the budget is shared by every instance. While Redis is unreachable each instance
 * limits on its own (the in-process store) instead of failing the request: an outage loosens
 * the limits by the number of instances, it does not take the API down. Calls go through the
 * Redis circuit breaker: a Redis that stops answering costs a request at most one command
 * timeout, and shared limits resume once Redis reconnects or the breaker's probe answers.
 */
export class RateLimiter {
  readonly counters: RateLimitCounters = { rejected: 0, storeErrors: 0 };
  private readonly shared: Window | undefined;
  private readonly local: Window;
  private sharedDown = false;

  constructor(
    private readonly rules: Readonly<Record<string, RateLimitRule>>,
    redis: { client: RedisClient; prefix: string; breaker: CircuitBreaker } | undefined,
    private readonly logger: Logger,
  ) {
    const windowMs = Math.max(...Object.values(rules).map((rule) => rule.windowMs));
    this.shared = redis
      ? windowOver(new RedisWindowStore(redis.client, redis.prefix, redis.breaker, windowMs))
      : undefined;
    this.local = windowOver(new MemoryWindowStore(windowMs));
  }

  /** Charges `calls` against the bucket or throws RATE_LIMITED. */
  async consume(clientKey: string, bucket: string, calls = 1): Promise<void> {
    const rule = this.rules[bucket];
    if (!rule) throw new Error(`no rate limit rule named ${bucket}`);
    let window = this.shared ?? this.local;
    let rejected: boolean;
    try {
      rejected = await this.charge(window, clientKey, bucket, rule, calls);
      if (window === this.shared) this.sharedAnswered();
    } catch (error) {
      if (window !== this.shared) throw error;
      this.sharedFailed(error as Error);
      window = this.local;
      rejected = await this.charge(window, clientKey, bucket, rule, calls);
    }
    if (!rejected) return;
    this.counters.rejected += 1;
    const retryAfter = await this.retryAfter(window, clientKey, bucket, rule, calls);
    throw appError('RATE_LIMITED', `Too many ${bucket} requests; retry in ${retryAfter} s`, {
      retryAfter,
    });
  }

  private async charge(
    window: Window,
    clientKey: string,
    bucket: string,
    rule: RateLimitRule,
    calls: number,
  ): Promise<boolean> {
    window.store.expectCalls(calls, rule.max);
    const rejection = await window.limiter(
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
    return Boolean(rejection);
  }

  /**
   * Seconds until `calls` more fit: enough of the recorded calls must leave the window, not just
   * the oldest one (a request charging three calls needs three free slots).
   */
  private async retryAfter(
    window: Window,
    clientKey: string,
    bucket: string,
    rule: RateLimitRule,
    calls: number,
  ): Promise<number> {
    const now = Date.now();
    const key = RecordingStore.key({
      contextIdentity: clientKey,
      fieldIdentity: getFieldIdentity(bucket, [], {}),
    });
    const recorded = await window.store.timestamps(key).catch(() => [] as number[]);
    const live = recorded.filter((at) => at + rule.windowMs > now);
    // The call whose expiry frees the last slot needed; more calls than the limit never fit, so
    // they get the whole window.
    const mustExpire = live.length + calls - rule.max;
    const freesLastSlot = calls <= rule.max ? live[mustExpire - 1] : undefined;
    return Math.max(1, Math.ceil(((freesLastSlot ?? now) + rule.windowMs - now) / 1000));
  }

  private sharedFailed(error: Error): void {
    this.counters.storeErrors += 1;
    if (this.sharedDown) return;
    this.sharedDown = true;
    this.logger.warn(
      { err: error.message },
      'rate limit store unreachable: limiting per instance until Redis answers',
    );
  }

  private sharedAnswered(): void {
    if (!this.sharedDown) return;
    this.sharedDown = false;
    this.logger.info('rate limit store reachable again: limits are shared again');
  }
}
