import { randomBytes } from 'node:crypto';
import { appError } from '../errors.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';

/**
 * What one charge decided. Rejected calls are not recorded; `freesAt` is the time (epoch ms) of
 * the recorded call whose expiry makes room for all of them, null when they can never fit (more
 * calls than the limit).
 */
type Decision = { allowed: true } | { allowed: false; freesAt: number | null };

/**
 * A sliding-window log per client and bucket: every allowed call's time, kept for one window.
 * `charge` trims, counts, decides and records in one atomic step, and costs what the window's
 * count costs to read, not its length: with a limit of thousands per window, handing every
 * recorded call back to be counted was most of a write's rate-limit cost (graphql-rate-limit's
 * store interface did that, in a read and a write).
 */
interface WindowStore {
  charge(key: string, calls: number, max: number, windowMs: number, now: number): Promise<Decision>;
}

/**
 * KEYS[1]: the client's window (a sorted set of calls scored by time). ARGV: now, window (ms),
 * max, calls, a member prefix unique to this charge. Returns {1} when the calls were recorded,
 * {0, freesAt} when refused (freesAt -1: they never fit).
 */
const CHARGE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local calls = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count + calls > max then
  if calls > max then return {0, -1} end
  local index = count + calls - max - 1
  local frees = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
  return {0, tonumber(frees[2])}
end
for i = 1, calls do redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], window)
return {1}
`;

type ScriptedRedis = RedisClient & {
  quireRateCharge(key: string, ...args: (string | number)[]): Promise<[number, number?]>;
};

/** Shared by every instance: one script call per charge, through the Redis circuit breaker. */
class RedisWindowStore implements WindowStore {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly breaker: CircuitBreaker,
  ) {
    redis.defineCommand('quireRateCharge', { numberOfKeys: 1, lua: CHARGE });
    this.redis = redis as ScriptedRedis;
  }

  async charge(key: string, calls: number, max: number, windowMs: number, now: number) {
    const member = randomBytes(6).toString('hex');
    const [allowed, freesAt] = await this.breaker.run(() =>
      this.redis.quireRateCharge(`${this.prefix}rate:${key}`, now, windowMs, max, calls, member),
    );
    if (allowed === 1) return { allowed: true } as const;
    return { allowed: false, freesAt: freesAt === undefined || freesAt < 0 ? null : freesAt };
  }
}

/**
 * The embedded default, and the fallback while Redis is unreachable: one process, and charge()
 * has no await between count and record. Each window is its calls' times, oldest first.
 */
class MemoryWindowStore implements WindowStore {
  private readonly windows = new Map<string, number[]>();
  private lastSweep = 0;

  async charge(key: string, calls: number, max: number, windowMs: number, now: number) {
    this.sweep(now, windowMs);
    const window = this.windows.get(key) ?? [];
    let expired = 0;
    while (expired < window.length && window[expired]! <= now - windowMs) expired += 1;
    if (expired > 0) window.splice(0, expired);
    if (window.length + calls > max) {
      const freesAt = calls > max ? null : window[window.length + calls - max - 1]!;
      return { allowed: false, freesAt } as const;
    }
    // A clock stepped back must not break the order the trim relies on.
    const inOrder = window.length === 0 || window[window.length - 1]! <= now;
    for (let call = 0; call < calls; call += 1) window.push(now);
    if (!inOrder) window.sort((a, b) => a - b);
    this.windows.set(key, window);
    return { allowed: true } as const;
  }

  /** Once per window, drops clients whose calls all expired: one-off clients would pile up. */
  private sweep(now: number, windowMs: number): void {
    if (now - this.lastSweep < windowMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) {
      if ((window[window.length - 1] ?? 0) <= now - windowMs) this.windows.delete(key);
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
  private readonly shared: WindowStore | undefined;
  private readonly local = new MemoryWindowStore();
  private sharedDown = false;

  constructor(
    private readonly rules: Readonly<Record<string, RateLimitRule>>,
    redis: { client: RedisClient; prefix: string; breaker: CircuitBreaker } | undefined,
    private readonly logger: Logger,
  ) {
    this.shared = redis
      ? new RedisWindowStore(redis.client, redis.prefix, redis.breaker)
      : undefined;
  }

  /**
   * Charges `calls` against the bucket (one atomic step: either all are recorded or none) or
   * throws RATE_LIMITED with `retryAfter`: the seconds until enough recorded calls have left the
   * window for all of them, not just the oldest one (a request charging three calls needs three
   * free slots); more calls than the limit get the whole window.
   */
  async consume(clientKey: string, bucket: string, calls = 1): Promise<void> {
    const rule = this.rules[bucket];
    if (!rule) throw new Error(`no rate limit rule named ${bucket}`);
    const key = `${clientKey}:${bucket}`;
    const now = Date.now();
    let decision: Decision;
    if (this.shared) {
      try {
        decision = await this.shared.charge(key, calls, rule.max, rule.windowMs, now);
        this.sharedAnswered();
      } catch (error) {
        this.sharedFailed(error as Error);
        decision = await this.local.charge(key, calls, rule.max, rule.windowMs, now);
      }
    } else {
      decision = await this.local.charge(key, calls, rule.max, rule.windowMs, now);
    }
    if (decision.allowed) return;
    this.counters.rejected += 1;
    const retryAfter = Math.max(
      1,
      Math.ceil(((decision.freesAt ?? now) + rule.windowMs - now) / 1000),
    );
    throw appError('RATE_LIMITED', `Too many ${bucket} requests; retry in ${retryAfter} s`, {
      retryAfter,
    });
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
