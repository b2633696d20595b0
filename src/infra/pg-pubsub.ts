import type pg from 'pg';
import type { Logger } from './logger.ts';
import type { PostgresListener } from './pg-listener.ts';
import { createBufferedPubSub, type QuirePubSub } from './pubsub.ts';

/** The Postgres channel that carries signals between processes without Redis. */
export const SIGNAL_CHANNEL = 'quire_signals';

interface Signal {
  topic: string;
  detail: unknown;
}

/**
 * An EventTarget whose events travel through Postgres (NOTIFY on publish, the process's
 * PostgresListener on receipt), so every process on the database hears every publish, its own
 * included. It listens to SIGNAL_CHANNEL when the first listener is added. Payloads must stay
 * below Postgres's 8,000 bytes: for small signals, not pipeline events.
 */
class PostgresEventTarget implements EventTarget {
  readonly #local = new EventTarget();
  #listening = false;
  readonly #changeListeners = new Set<() => void>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly listener: PostgresListener,
    private readonly logger: Logger,
  ) {}

  addEventListener(...args: Parameters<EventTarget['addEventListener']>): void {
    this.#local.addEventListener(...args);
    if (this.#listening) return;
    this.#listening = true;
    this.listener.listen(SIGNAL_CHANNEL, {
      notification: (payload) => this.#receive(payload),
      // Back after signals were lost: listeners drop what they kept, as on the loss.
      listening: (recovered) => {
        if (recovered) this.#changed();
      },
      down: () => this.#changed(),
    });
  }

  removeEventListener(...args: Parameters<EventTarget['removeEventListener']>): void {
    this.#local.removeEventListener(...args);
  }

  /** Sends the event's detail to every listening process; a failure is logged, not thrown. */
  dispatchEvent(event: Event): boolean {
    const signal: Signal = { topic: event.type, detail: (event as CustomEvent).detail };
    this.pool
      .query('select pg_notify($1, $2)', [SIGNAL_CHANNEL, JSON.stringify(signal)])
      .catch((error: Error) =>
        this.logger.debug({ err: error.message, topic: event.type }, 'signal dropped'),
      );
    return true;
  }

  /**
   * Resolves once LISTEN runs (at once if nothing listens yet), waiting for a connection under
   * way; rejects while the connection is down between attempts: signals sent then are lost.
   */
  confirmed(): Promise<void> {
    return this.listener.confirmed(SIGNAL_CHANNEL);
  }

  /** Calls `listener` whenever the feed is lost and whenever it is back (LISTEN ran again). */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #changed(): void {
    for (const listener of this.#changeListeners) listener();
  }

  #receive(payload: string): void {
    if (!payload) return;
    let signal: Signal;
    try {
      signal = JSON.parse(payload) as Signal;
    } catch {
      return;
    }
    this.#local.dispatchEvent(new CustomEvent(signal.topic, { detail: signal.detail }));
  }
}

/**
 * Pub/sub over Postgres LISTEN/NOTIFY, for processes without Redis that must still hear each
 * other's signals: a revoked token or a changed role (viewerChanged) on one instance drops the
 * viewer that every other instance keeps in memory. It publishes through `pool` and hears through
 * `listener` (the process's one LISTEN connection, closed by its owner). `subscriptionsConfirmed`
 * resolves once LISTEN runs; `onReconnect` listeners run when the connection is lost and when it
 * is back. Postgres wakes every listening session at a notification's commit, so the others hear
 * it about when the publisher hears its own (milliseconds on a loaded machine; Redis delivers to
 * all subscribers before the publisher's echo, which makes its window narrower).
 */
export function createPostgresPubSub(
  pool: pg.Pool,
  listener: PostgresListener,
  logger: Logger,
): QuirePubSub {
  const target = new PostgresEventTarget(pool, listener, logger);
  return createBufferedPubSub(
    target,
    () => target.confirmed(),
    (onChange) => target.onChange(onChange),
  );
}
