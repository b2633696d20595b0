import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from './logger.ts';
import { createBufferedPubSub, type QuirePubSub } from './pubsub.ts';

/** The Postgres channel that carries signals between processes without Redis. */
export const SIGNAL_CHANNEL = 'quire_signals';

interface Signal {
  topic: string;
  detail: unknown;
}

/**
 * An EventTarget whose events travel through Postgres (NOTIFY on publish, a dedicated LISTEN
 * connection on receipt), so every process on the database hears every publish, its own included.
 * It connects when the first listener is added and reconnects after a loss. Payloads must stay
 * below Postgres's 8,000 bytes: for small signals, not pipeline events.
 */
class PostgresEventTarget implements EventTarget {
  readonly #local = new EventTarget();
  #client: pg.Client | undefined;
  #state: 'idle' | 'connecting' | 'live' | 'down' | 'stopped' = 'idle';
  #attempt: Promise<void> = Promise.resolve();
  readonly #changeListeners = new Set<() => void>();

  constructor(
    private readonly database: { pool: pg.Pool; url: string },
    private readonly logger: Logger,
    private readonly retryMs: number,
  ) {}

  addEventListener(...args: Parameters<EventTarget['addEventListener']>): void {
    this.#local.addEventListener(...args);
    if (this.#state === 'idle') this.#connect(true);
  }

  removeEventListener(...args: Parameters<EventTarget['removeEventListener']>): void {
    this.#local.removeEventListener(...args);
  }

  /** Sends the event's detail to every listening process; a failure is logged, not thrown. */
  dispatchEvent(event: Event): boolean {
    const signal: Signal = { topic: event.type, detail: (event as CustomEvent).detail };
    this.database.pool
      .query('select pg_notify($1, $2)', [SIGNAL_CHANNEL, JSON.stringify(signal)])
      .catch((error: Error) =>
        this.logger.debug({ err: error.message, topic: event.type }, 'signal dropped'),
      );
    return true;
  }

  /**
   * Resolves once LISTEN runs (at once if nothing listens yet), waiting for a connection under
   * way; rejects while the feed is down between attempts: signals sent then are lost.
   */
  confirmed(): Promise<void> {
    if (this.#state === 'down') return Promise.reject(new Error('signal feed is down'));
    return this.#attempt;
  }

  /** Calls `listener` whenever the feed is lost and whenever it is back (LISTEN ran again). */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    await this.#attempt.catch(() => {});
    await this.#client?.end().catch(() => {});
  }

  #connect(first: boolean): void {
    this.#state = 'connecting';
    this.#attempt = this.#listen(first);
    this.#attempt.catch(() => {});
  }

  async #listen(first: boolean): Promise<void> {
    const client = new pg.Client({
      connectionString: this.database.url,
      application_name: 'quire signal listener',
    });
    client.on('error', (error) => this.#lost(client, error));
    client.on('notification', (message) => this.#receive(message.payload));
    try {
      await client.connect();
      await client.query(`listen ${SIGNAL_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => {});
      if (this.#state === 'stopped') return;
      this.#state = 'down';
      if (first)
        this.logger.warn({ err: (error as Error).message }, 'signal feed unavailable: retrying');
      void sleep(this.retryMs).then(() => {
        if (this.#state === 'down') this.#connect(false);
      });
      throw error;
    }
    if (this.#state === 'stopped') {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#state = 'live';
    if (!first) {
      this.logger.info('signal feed back');
      this.#changed();
    }
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#state === 'stopped' || client !== this.#client) return;
    this.#client = undefined;
    this.#state = 'down';
    this.logger.warn({ err: error.message }, 'signal feed lost: reconnecting');
    void client.end().catch(() => {});
    this.#changed();
    void sleep(this.retryMs).then(() => {
      if (this.#state === 'down') this.#connect(false);
    });
  }

  #changed(): void {
    for (const listener of this.#changeListeners) listener();
  }

  #receive(payload: string | undefined): void {
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
 * viewer that every other instance keeps in memory. `subscriptionsConfirmed` resolves once LISTEN
 * runs; `onReconnect` listeners run when the feed is lost and when it is back. Postgres wakes every
 * listening session at a notification's commit, so the others hear it about when the publisher
 * hears its own (milliseconds on a loaded machine; Redis delivers to all subscribers before the
 * publisher's echo, which makes its window narrower).
 */
export function createPostgresPubSub(
  database: { pool: pg.Pool; url: string },
  logger: Logger,
  retryMs = 1000,
): { pubsub: QuirePubSub; close(): Promise<void> } {
  const target = new PostgresEventTarget(database, logger, retryMs);
  return {
    pubsub: createBufferedPubSub(
      target,
      () => target.confirmed(),
      (listener) => target.onChange(listener),
    ),
    close: () => target.stop(),
  };
}
