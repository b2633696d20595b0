import { ReplyError } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger.ts';

export type BreakerState = 'closed' | 'open';

/** Thrown instead of calling Redis while the breaker is open: the caller's Redis-down fallback. */
export class CircuitOpenError extends Error {
  constructor(name: string) {
    super(`redis ${name}: circuit open, not waiting for a silent Redis`);
  }
}

export interface CircuitBreakerOptions {
  /** Names the Redis connection in logs and metrics ('commands', 'publish'). */
  name: string;
  /** Consecutive failed calls that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses calls before a probe may close it. */
  cooldownMs: number;
  /** One cheap command (PING): run in the background, never by a request. */
  probe: () => Promise<unknown>;
  logger: Logger;
}

/**
 * Stops callers from waiting on a Redis that accepts commands but never answers (frozen,
 * partitioned): each call is bounded by the client's command timeout, and after
 * `failureThreshold` failures in a row calls fail at once, so a request pays no Redis time and
 * takes the same fallback as when Redis is down. Once open, the first call after each cooldown
 * starts a background probe; only the probe's answer closes the circuit, so no request ever
 * waits for a half-open attempt. Redis error replies (a script error) prove Redis answers and
 * do not count.
 */
export class CircuitBreaker {
  state: BreakerState = 'closed';
  /** Since process start: times the circuit opened, calls refused while open. */
  readonly counters = { opened: 0, refused: 0 };
  private consecutiveFailures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly recoveryListeners: (() => void)[] = [];

  constructor(private readonly options: CircuitBreakerOptions) {}

  get name(): string {
    return this.options.name;
  }

  /** Runs one Redis call, or throws CircuitOpenError without calling while the circuit is open. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.state === 'open') {
      this.counters.refused += 1;
      this.probeIfCooledDown();
      throw new CircuitOpenError(this.options.name);
    }
    try {
      const result = await call();
      this.consecutiveFailures = 0;
      return result;
    } catch (error) {
      if (!(error instanceof ReplyError)) this.failed(error as Error);
      throw error;
    }
  }

  /** Called when the circuit closes again: state lost while it was open can be repaired. */
  onRecovery(listener: () => void): void {
    this.recoveryListeners.push(listener);
  }

  /**
   * Sends calls again. Call it when the connection is re-established (ioredis `ready`): a fresh
   * connection that passed its ready check answers, no probe needed.
   */
  close(): void {
    this.consecutiveFailures = 0;
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.options.logger.info({ redis: this.options.name }, 'redis circuit closed');
    for (const listener of this.recoveryListeners) listener();
  }

  private failed(error: Error): void {
    this.consecutiveFailures += 1;
    if (this.state === 'open' || this.consecutiveFailures < this.options.failureThreshold) return;
    this.open();
    this.options.logger.warn(
      { redis: this.options.name, err: error.message, cooldownMs: this.options.cooldownMs },
      'redis circuit open: calls fail fast and fall back until a probe answers',
    );
  }

  private open(): void {
    this.state = 'open';
    this.openedAt = Date.now();
    this.counters.opened += 1;
  }

  private probeIfCooledDown(): void {
    if (this.probing || Date.now() - this.openedAt < this.options.cooldownMs) return;
    this.probing = true;
    this.options
      .probe()
      .then(
        () => this.close(),
        // Still silent or down: another full cooldown before the next probe.
        () => {
          this.openedAt = Date.now();
        },
      )
      .finally(() => {
        this.probing = false;
      });
  }
}

/**
 * `quire_redis_circuit_open{connection}` (1 while open) and
 * `quire_redis_circuit_refused_total{connection}` (calls answered by the fallback without asking
 * Redis), read at scrape time.
 */
export function registerBreakerMetrics(
  registry: Registry,
  breakers: readonly CircuitBreaker[],
): void {
  new Gauge({
    name: 'quire_redis_circuit_open',
    help: 'Whether calls to this Redis connection fail fast (1) or are sent (0)',
    labelNames: ['connection'] as const,
    registers: [registry],
    collect() {
      for (const breaker of breakers)
        this.set({ connection: breaker.name }, breaker.state === 'open' ? 1 : 0);
    },
  });
  new Counter({
    name: 'quire_redis_circuit_refused_total',
    help: 'Redis calls not sent because the circuit was open (answered by the fallback)',
    labelNames: ['connection'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const breaker of breakers)
        this.inc({ connection: breaker.name }, breaker.counters.refused);
    },
  });
}
