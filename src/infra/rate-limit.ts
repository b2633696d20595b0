import { randomBytes } from 'node:crypto';
import { getGraphQLRateLimiter, type Identity, Store } from 'graphql-rate-limit';
import { appError } from '../errors.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';

/**
 * One charge as the store sees it: how many calls, against which limit, and (filled in by the
 * store when it refuses) the time, epoch ms, at which enough recorded calls have left the window
 * for all of them; null when they can never fit (more calls than the limit).
 */
interface Charge {
  calls: number;
  max: number;
  /** The rule's window: the step counts only the calls recorded within it. */
  windowMs: number;
  freesAt?: number | null;
}

/** What the atomic step decided: whether it recorded the calls and, if not, `freesAt`. */
interface Recorded {
  recorded: boolean;
  freesAt?: number | null;
}

/**
 * How many live calls to hand graphql-rate-limit for a decision the atomic step made: the fewest
 * that make its test `handed + calls > max` come out the same. None when the calls were recorded
 * (they fit, so `calls <= max`); `max - calls + 1` when refused (none when the calls alone exceed
 * the limit). The library walks and copies whatever it is handed (a `Date.now()` per element), so
 * handing it the window's count made a charge cost O(calls in the window): thousands with the
 * bench's raised limit, about 8 % of a createPost's API CPU.
 */
export function handedCount(decision: Recorded, charge: Pick<Charge, 'calls' | 'max'>): number {
  return decision.recorded ? 0 : Math.max(0, charge.max - charge.calls + 1);
}

/**
 * graphql-rate-limit reads the window, decides, then writes it back: two round trips, so
 * concurrent calls all see the same count and all pass. These stores decide in the read itself
 * (one atomic step): they count the live calls, record this charge's calls only when
 * `live + calls <= max` (the test graphql-rate-limit applies to what the read returns), and hand
 * back a count that passes the library's test exactly when the step recorded the calls
 * (`handedCount`), not the calls. The write-back is then a no-op.
 */
abstract class RecordingStore extends Store {
  protected abstract record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
    max: number,
  ): Promise<Recorded>;
  private next: Charge | undefined;

  /** `windowMs`: the longest window of any rule, how long a recorded call may matter. */
  constructor(protected readonly windowMs: number) {
    super();
  }

  static key(identity: Identity): string {
    return `${identity.contextIdentity}:${identity.fieldIdentity}`;
  }

  /**
   * The charge the next read decides. graphql-rate-limit reaches getForIdentity synchronously
   * after it is invoked, so setting this right before invoking it cannot leak to another call.
   */
  expect(charge: Charge): void {
    this.next = charge;
  }

  /**
   * Calls for graphql-rate-limit to count: as many as `handedCount` says, so it decides what the
   * atomic step decided. They are dated when the step answers, not when it was asked: the library
   * drops calls older than the window as it reads them, so a refusal that took longer than the
   * window to arrive (a slow Redis, a stalled event loop) handed calls it dropped, and passed.
   */
  override async getForIdentity(identity: Identity): Promise<readonly number[]> {
    const charge = this.next ?? { calls: 1, max: Number.MAX_SAFE_INTEGER, windowMs: this.windowMs };
    this.next = undefined;
    const call = randomBytes(6).toString('hex');
    const members = Array.from({ length: charge.calls }, (_, index) => `${call}:${index}`);
    const now = Date.now();
    const recorded = await this.record(
      RecordingStore.key(identity),
      members,
      now,
      charge.windowMs,
      charge.max,
    );
    charge.freesAt = recorded.freesAt;
    return new Array<number>(handedCount(recorded, charge)).fill(Date.now());
  }

  /** Nothing to write: the read recorded the calls it allowed and none it refused. */
  override async setForIdentity(): Promise<void> {}
}

/**
 * Sliding window in a sorted set (calls scored by time): trim, count, decide and record in one
 * Lua script. ARGV: now, window (ms), max, then the members of this charge's calls. Returns {1}
 * when they were recorded, {0, freesAt} when refused (freesAt -1: never).
 */
const RECORD = `
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[3])
local calls = #ARGV - 3
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ARGV[2])
local live = redis.call('ZCARD', KEYS[1])
if live + calls > max then
  if calls > max then return {0, -1} end
  local oldest = redis.call('ZRANGE', KEYS[1], live + calls - max - 1, live + calls - max - 1, 'WITHSCORES')
  return {0, tonumber(oldest[2])}
end
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1}
`;

const recordedFrom = ([recorded, freesAt]: [number, number?]): Recorded => ({
  recorded: recorded === 1,
  freesAt: freesAt === undefined ? undefined : freesAt === -1 ? null : freesAt,
});

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
    max: number,
  ): Promise<Recorded> {
    const scripted = this.redis as RedisClient & {
      quireRateRecord(...args: (string | number)[]): Promise<[number, number?]>;
    };
    return recordedFrom(
      await this.breaker.run(() =>
        scripted.quireRateRecord(`${this.prefix}rate:${key}`, now, windowMs, max, ...members),
      ),
    );
  }
}

/**
 * The embedded default, and the fallback while Redis is unreachable: one process, and record()
 * has no await between read and write.
 */
class MemoryWindowStore extends RecordingStore {
  /** Per client and bucket, the recorded calls' times in the order they came (oldest first). */
  private readonly windows = new Map<string, number[]>();
  private lastSweep = 0;

  protected async record(
    key: string,
    members: string[],
    now: number,
    windowMs: number,
    max: number,
  ): Promise<Recorded> {
    this.sweep(now);
    const window = this.windows.get(key) ?? [];
    const expired = window.findIndex((at) => at > now - windowMs);
    window.splice(0, expired === -1 ? window.length : expired);
    const live = window.length;
    const calls = members.length;
    if (live + calls > max) {
      const freesAt = calls > max ? null : (window[live + calls - max - 1] ?? null);
      return { recorded: false, freesAt };
    }
    for (let index = 0; index < calls; index++) window.push(now);
    this.windows.set(key, window);
    return { recorded: true };
  }

  /**
   * Once per longest window, drops clients whose calls all left it: one-off clients would pile
   * up. The longest, so no bucket loses calls its own window still counts.
   */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.windowMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) {
      if ((window.at(-1) ?? 0) <= now - this.windowMs) this.windows.delete(key);
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
    let charge: Charge = { calls, max: rule.max, windowMs: rule.windowMs };
    let rejected: boolean;
    try {
      rejected = await this.charge(window, clientKey, bucket, charge);
      if (window === this.shared) this.sharedAnswered();
    } catch (error) {
      if (window !== this.shared) throw error;
      this.sharedFailed(error as Error);
      window = this.local;
      charge = { calls, max: rule.max, windowMs: rule.windowMs };
      rejected = await this.charge(window, clientKey, bucket, charge);
    }
    if (!rejected) return;
    this.counters.rejected += 1;
    // Seconds until enough recorded calls leave the window for every call this request charges
    // (not just the oldest one); more calls than the limit never fit: the whole window.
    const now = Date.now();
    const retryAfter = Math.max(
      1,
      Math.ceil(((charge.freesAt ?? now) + rule.windowMs - now) / 1000),
    );
    throw appError('RATE_LIMITED', `Too many ${bucket} requests; retry in ${retryAfter} s`, {
      retryAfter,
    });
  }

  /** Whether graphql-rate-limit refused the calls; `charge.freesAt` says until when. */
  private async charge(
    window: Window,
    clientKey: string,
    bucket: string,
    charge: Charge,
  ): Promise<boolean> {
    window.store.expect(charge);
    const rejection = await window.limiter(
      {
        parent: undefined,
        args: { calls: Array.from({ length: charge.calls }) },
        context: clientKey,
        info: { fieldName: bucket } as never,
      },
      {
        max: charge.max,
        window: `${charge.windowMs}ms`,
        arrayLengthField: 'calls',
        uncountRejected: true,
      },
    );
    return Boolean(rejection);
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
