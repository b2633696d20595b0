import pg from 'pg';
import type { Logger } from './logger.ts';

/** How the listener's backend shows in pg_stat_activity: one per process. */
export const LISTENER_APPLICATION_NAME = 'quire listener';

/**
 * What one channel of a PostgresListener is told. Postgres keeps no notification for a session
 * that is not listening: whatever was sent from `down` (or from the channel's first failed
 * attempt) until `listening` is lost, so a consumer trusts nothing it kept over that gap.
 */
export interface ChannelHandler {
  /** A notification on the channel, its payload ('' without one), in commit order. */
  notification(payload: string): void;
  /**
   * LISTEN ran for the channel on the current connection. `recovered` is true when it was not
   * listened for a while since it was added (a lost connection or a failed attempt): notifications
   * of that while were lost.
   */
  listening(recovered: boolean): void;
  /** The connection was lost: the channel is not listened until `listening` is called again. */
  down(): void;
}

interface Channel {
  handler: ChannelHandler;
  /** Settles when LISTEN ran for the channel on the current connection (rejects if it failed). */
  ready: Promise<void>;
  /** Not listened at some point since it was added or last heard `listening`. */
  missed: boolean;
}

/** Timings of a PostgresListener, in milliseconds. */
export interface ListenerOptions {
  /** Wait between a failed attempt (or a loss) and the next attempt. Default 1000. */
  retryMs?: number;
  /** Bound on opening the connection, and on each statement it runs (LISTEN). Default 5000. */
  connectTimeoutMs?: number;
  /** Wait between one heartbeat's answer and the next heartbeat. Default 5000. */
  heartbeatMs?: number;
  /** How long a heartbeat may go unanswered before the connection counts as lost. Default 2000. */
  heartbeatTimeoutMs?: number;
}

/**
 * The process's one Postgres connection for LISTEN, shared by every channel (the pipeline
 * worker's wake-ups, viewer signals, cache invalidations), with a handler per channel. It
 * connects when the first channel is added and listens to channels added later on the same
 * connection. A loss tells every channel `down`; after a loss or a failed attempt it tries again
 * every `retryMs` and LISTENs all channels before telling each `listening(true)`. Notifications
 * are sent from the pool (`pg_notify`), not here.
 *
 * A connection that dies silently (a partition, a frozen proxy) raises no error and delivers no
 * notification: a heartbeat (`select 1` every `heartbeatMs`, answered within
 * `heartbeatTimeoutMs`) finds it, and a missed one is a loss like any other, noticed within
 * their sum. TCP keepalive also lets the kernel close a dead socket.
 *
 * Own code, as no library kept these guarantees: pg-listen gives up reconnecting after 3 s by
 * default, finishes a reconnect under way at `close()` (a connection left open) and stays down
 * when the LISTEN after a reconnect fails; pg-pubsub reports no loss; @imqueue/pg-pubsub is
 * GPL-3.0 and renames the connection.
 */
export class PostgresListener {
  readonly #channels = new Map<string, Channel>();
  #state: 'idle' | 'connecting' | 'live' | 'down' | 'stopped' = 'idle';
  /** The live connection. */
  #client: pg.Client | undefined;
  /** The connection an attempt is opening, ended by `close` so it need not wait for it. */
  #opening: pg.Client | undefined;
  #attempt: Promise<void> = Promise.resolve();
  #retry: NodeJS.Timeout | undefined;
  /** The next heartbeat, or the bound on the one in flight. */
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    private readonly options: ListenerOptions = {},
  ) {}

  /**
   * False while the connection is down or (re)connecting, when notifications are being lost;
   * true while it is live, and before anything listens.
   */
  get up(): boolean {
    return this.#state === 'live' || this.#state === 'idle';
  }

  /**
   * Listens to `channel` (a Postgres identifier) with `handler`, on the live connection or on the
   * one about to open (opening it if none is). A channel has one handler at a time. Returns the
   * function that removes it: the handler hears nothing more, the live connection UNLISTENs, and
   * the channel may be listened again (by a pipeline worker started after another stopped).
   */
  listen(channel: string, handler: ChannelHandler): () => void {
    if (this.#channels.has(channel)) throw new Error(`channel ${channel} is already listened`);
    if (this.#state === 'stopped') return () => {};
    const entry: Channel = { handler, ready: this.#attempt, missed: this.#state === 'down' };
    this.#channels.set(channel, entry);
    if (this.#state === 'idle') this.#connect(false);
    else if (this.#state === 'live') entry.ready = this.#listenLive(this.#client!, channel, entry);
    entry.ready.catch(() => {});
    return () => this.#unlisten(channel, entry);
  }

  /**
   * Resolves once LISTEN runs for `channel` (at once for a channel nobody listens to), waiting for
   * a connection under way; rejects while the connection is down between attempts.
   */
  confirmed(channel: string): Promise<void> {
    const entry = this.#channels.get(channel);
    if (!entry) return Promise.resolve();
    if (this.#state === 'down')
      return Promise.reject(new Error('Postgres LISTEN connection is down'));
    return entry.ready;
  }

  /** Ends the connection (or the attempt under way) and any retry; handlers hear nothing more. */
  async close(): Promise<void> {
    this.#state = 'stopped';
    clearTimeout(this.#retry);
    clearTimeout(this.#heartbeat);
    void this.#opening?.end().catch(() => {});
    await this.#attempt.catch(() => {});
    await this.#client?.end().catch(() => {});
  }

  #connect(retrying: boolean): void {
    this.#state = 'connecting';
    this.#attempt = this.#open(retrying);
    this.#attempt.catch(() => {});
    for (const entry of this.#channels.values()) entry.ready = this.#attempt;
  }

  async #open(retrying: boolean): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
      // A partition can leave an attempt waiting for bytes that never come: bound it.
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000,
      query_timeout: this.options.connectTimeoutMs ?? 5000,
    });
    client.on('error', (error) => this.#lost(client, error));
    client.on('notification', (message) =>
      this.#channels.get(message.channel)?.handler.notification(message.payload ?? ''),
    );
    this.#opening = client;
    const listened = new Set<string>();
    try {
      await client.connect();
      // Channels added while a LISTEN is in flight wait for this attempt: listen to them too.
      for (;;) {
        const pending = [...this.#channels.keys()].filter((channel) => !listened.has(channel));
        if (pending.length === 0 || this.#state === 'stopped') break;
        await client.query(
          pending.map((channel) => `listen ${client.escapeIdentifier(channel)}`).join('; '),
        );
        for (const channel of pending) listened.add(channel);
      }
    } catch (error) {
      this.#opening = undefined;
      await client.end().catch(() => {});
      if (this.#state === 'stopped') return;
      this.#state = 'down';
      for (const entry of this.#channels.values()) entry.missed = true;
      if (!retrying)
        this.logger.warn(
          { err: (error as Error).message, channels: [...this.#channels.keys()] },
          'Postgres LISTEN connection unavailable: retrying; what depends on it stays off until it connects',
        );
      this.#scheduleRetry();
      throw error;
    }
    this.#opening = undefined;
    if (this.#state === 'stopped') {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#state = 'live';
    this.#scheduleHeartbeat(client);
    if (retrying) this.logger.info({ channels: [...listened] }, 'Postgres LISTEN connection back');
    for (const channel of listened) {
      const entry = this.#channels.get(channel);
      if (entry) this.#heard(entry);
    }
  }

  /** LISTEN for a channel added while the connection is live; a failure counts as a loss. */
  async #listenLive(client: pg.Client, channel: string, entry: Channel): Promise<void> {
    try {
      await client.query(`listen ${client.escapeIdentifier(channel)}`);
    } catch (error) {
      this.#lost(client, error as Error);
      throw error;
    }
    if (client === this.#client && this.#channels.get(channel) === entry) this.#heard(entry);
  }

  /**
   * A connection under way may still LISTEN to the channel: its notifications find no handler and
   * are dropped, as they are once UNLISTEN runs (a failure there is the connection's loss).
   */
  #unlisten(channel: string, entry: Channel): void {
    if (this.#channels.get(channel) !== entry) return;
    this.#channels.delete(channel);
    if (this.#state === 'live')
      this.#client!.query(`unlisten ${this.#client!.escapeIdentifier(channel)}`).catch(() => {});
  }

  #heard(entry: Channel): void {
    const recovered = entry.missed;
    entry.missed = false;
    entry.handler.listening(recovered);
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#state === 'stopped' || client !== this.#client) return;
    this.#client = undefined;
    this.#state = 'down';
    clearTimeout(this.#heartbeat);
    this.logger.warn(
      { err: error.message, channels: [...this.#channels.keys()] },
      'Postgres LISTEN connection lost: reconnecting; what depends on it is off until it is back',
    );
    void client.end().catch(() => {});
    for (const entry of this.#channels.values()) {
      entry.missed = true;
      entry.handler.down();
    }
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    this.#retry = setTimeout(() => {
      if (this.#state === 'down') this.#connect(true);
    }, this.options.retryMs ?? 1000);
  }

  /** A `select 1` on `client` after `heartbeatMs`; no answer within `heartbeatTimeoutMs` is a loss. */
  #scheduleHeartbeat(client: pg.Client): void {
    this.#heartbeat = setTimeout(() => {
      if (client !== this.#client) return;
      this.#heartbeat = setTimeout(
        () => this.#lost(client, new Error('heartbeat unanswered')),
        this.options.heartbeatTimeoutMs ?? 2000,
      );
      client.query('select 1').then(
        () => {
          if (client !== this.#client) return;
          clearTimeout(this.#heartbeat);
          this.#scheduleHeartbeat(client);
        },
        (error: Error) => this.#lost(client, error),
      );
    }, this.options.heartbeatMs ?? 5000);
  }
}
