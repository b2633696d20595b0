import DataLoader from 'dataloader';
import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Context } from '../../context.ts';
import type { Db } from '../../db/database.ts';
import type { Role } from '../../db/tables.ts';
import { appError } from '../../errors.ts';
import type { Cache } from '../../infra/cache.ts';
import type { Logger } from '../../infra/logger.ts';
import type { QuirePubSub, ViewerChangedMessage } from '../../infra/pubsub.ts';
import { liveTokensByHashes } from './auth.repository.ts';
import type { Viewer } from './viewer.ts';
import { ViewerCache } from './viewer-cache.ts';

/** The viewer a long-lived stream was authorized as: its token, user and role at the start. */
export interface StreamViewer {
  tokenHash: string;
  userId: string;
  role: Role;
}

/** One check of a viewer for one event, shared by the viewer's streams. */
interface SharedCheck {
  promise: Promise<ViewerChangedMessage | null>;
  /** Its outcome once settled without error. */
  settled: ViewerChangedMessage | null | undefined;
}

type Watcher = { tokenHash: string; onChange(change: ViewerChangedMessage): void };

/**
 * How long `publish` waits for the broker to echo a change back to this instance. Redis writes a
 * message to every subscriber before the echo reaches the publisher, so once it is back the other
 * instances have it too; past this (Redis down or silent) the change is answered anyway and
 * other instances' viewer caches expire on their own (VIEWER_MEMORY_TTL_MS).
 */
const ECHO_TIMEOUT_MS = 1000;
/** How long a check of a stream's token waits for others to share its query. */
const LIVE_TOKEN_WINDOW_MS = 2;

/**
 * This instance's streams (subscriptions, graphql-ws sockets) by the viewer they speak for, so a
 * revoked token or a changed role ends them on every instance. A change is published through
 * pub/sub after it committed (`publish`) and lands in `onViewerChanged`; since a signal can be
 * late or lost, streams also ask `changeOf` before each event they deliver.
 */
export class ViewerStreams {
  readonly #byUser = new Map<string, Set<Watcher>>();
  readonly #pubsub: QuirePubSub;
  readonly #logger: Logger;
  readonly #liveTokens: DataLoader<string, { userId: string; role: Role } | null>;
  /** Viewers by token hash, dropped here on every change (see `onViewerChanged`). */
  readonly #viewers: ViewerCache;
  /** Changes this instance published, waiting for their echo. */
  readonly #echoes = new Set<{ change: ViewerChangedMessage; arrived(): void }>();
  #listening = false;
  readonly #checksByEvent = new WeakMap<object, Map<string, SharedCheck>>();

  /** `cache` (the shared second-level cache) holds viewers across instances when given. */
  constructor(deps: { db: Db; pubsub: QuirePubSub; logger: Logger; cache?: Cache }) {
    this.#pubsub = deps.pubsub;
    this.#logger = deps.logger;
    this.#viewers = new ViewerCache({ db: deps.db, cache: deps.cache, logger: deps.logger });
    // One query per tick for all the streams that deliver an event in it, not one per stream;
    // each distinct token once (uncached, the loader repeats a key per stream that asks).
    this.#liveTokens = new DataLoader(
      async (hashes) => {
        const rows = await liveTokensByHashes(deps.db, [...new Set(hashes)]);
        const byHash = new Map(rows.map((row) => [row.token_hash, row]));
        return hashes.map((hash) => {
          const row = byHash.get(hash);
          return row ? { userId: row.user_id, role: row.role } : null;
        });
      },
      // A short window instead of one tick: thousands of streams subscribing together (a
      // reconnect storm) each check their viewer first, and one query per tick queued them
      // behind the pool. A load still starts its query after it was asked for.
      { cache: false, batchScheduleFn: (callback) => setTimeout(callback, LIVE_TOKEN_WINDOW_MS) },
    );
  }

  /**
   * Calls `onChange` for each change to `viewer` (its token revoked, its user's role changed), on
   * whichever instance it happened, until the returned function is called.
   */
  watch(
    viewer: Pick<StreamViewer, 'tokenHash' | 'userId'>,
    onChange: (change: ViewerChangedMessage) => void,
  ): () => void {
    this.#listen();
    const watcher = { tokenHash: viewer.tokenHash, onChange };
    const watchers = this.#byUser.get(viewer.userId) ?? new Set();
    this.#byUser.set(viewer.userId, watchers);
    watchers.add(watcher);
    return () => {
      watchers.delete(watcher);
      if (watchers.size === 0 && this.#byUser.get(viewer.userId) === watchers)
        this.#byUser.delete(viewer.userId);
    };
  }

  /**
   * The viewer a live token (by hash) speaks for, null for an unknown or revoked one: from the
   * viewer cache (no SQL once warm), which this instance keeps only while it hears changes.
   */
  findViewer(db: Db, tokenHash: string): Promise<Viewer | null> {
    this.#listen();
    return this.#viewers.find(db, tokenHash);
  }

  /**
   * Announces a committed change to every instance. This one applies it at once; the shared
   * viewer cache is invalidated before the signal goes out, and the call resolves once the
   * signal came back from the broker (at most ECHO_TIMEOUT_MS), so a request sent to any
   * instance after it resolved sees the change.
   */
  async publish(change: ViewerChangedMessage): Promise<void> {
    this.onViewerChanged(change);
    await this.#viewers.invalidateShared(change);
    this.#listen();
    await this.#pubsub.subscriptionsConfirmed().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<void>((resolve) => {
      const echo = { change, arrived: resolve };
      this.#echoes.add(echo);
      timer = setTimeout(resolve, ECHO_TIMEOUT_MS);
      timer.unref();
    });
    this.#pubsub.publish('viewerChanged', change);
    await echoed;
    clearTimeout(timer);
    for (const echo of this.#echoes) if (echo.change === change) this.#echoes.delete(echo);
  }

  /**
   * Where every change to a viewer lands on this instance (once from `publish` here, again when
   * the broker echoes it: applying one twice is harmless). Anything this instance keeps per token
   * or user (cached viewers, streams) is dropped or ended here.
   */
  onViewerChanged(change: ViewerChangedMessage): void {
    this.#viewers.drop(change);
    const watchers = this.#byUser.get(change.userId);
    if (!watchers) return;
    // A copy: ending a stream unwatches it while we iterate.
    for (const watcher of [...watchers]) {
      if (change.tokenHash === null || change.tokenHash === watcher.tokenHash)
        watcher.onChange(change);
    }
  }

  /**
   * What changed about `viewer` since its stream started, read from Postgres; null when its token
   * still speaks for the same user and role. The safety net for a late or lost signal. Given the
   * `event` about to be delivered (a result shared by the streams of one viewer scope), the
   * streams of one viewer share one check of it, started once the event existed: a thousand
   * streams of one token cost one check per event, not a thousand.
   */
  changeOf(viewer: StreamViewer, event?: object): Promise<ViewerChangedMessage | null> {
    if (!event) return this.#changeOf(viewer);
    return this.#sharedCheck(viewer, event).promise;
  }

  /**
   * The outcome of `event`'s shared check for `viewer` once it has settled without error
   * (ViewerChangedMessage or null), undefined before: the streams after the first one of a
   * viewer then go on without awaiting it.
   */
  settledChangeOf(viewer: StreamViewer, event: object): ViewerChangedMessage | null | undefined {
    return this.#sharedCheck(viewer, event).settled;
  }

  #sharedCheck(viewer: StreamViewer, event: object): SharedCheck {
    let checks = this.#checksByEvent.get(event);
    if (!checks) {
      checks = new Map();
      this.#checksByEvent.set(event, checks);
    }
    const key = `${viewer.tokenHash}\u0000${viewer.userId}\u0000${viewer.role}`;
    let check = checks.get(key);
    if (!check) {
      const started: SharedCheck = { promise: this.#changeOf(viewer), settled: undefined };
      started.promise.then(
        (change) => {
          started.settled = change;
        },
        () => {},
      );
      check = started;
      checks.set(key, check);
    }
    return check;
  }

  async #changeOf(viewer: StreamViewer): Promise<ViewerChangedMessage | null> {
    const live = await this.#liveTokens.load(viewer.tokenHash);
    if (!live || live.userId !== viewer.userId)
      return { userId: viewer.userId, tokenHash: viewer.tokenHash };
    return live.role === viewer.role ? null : { userId: viewer.userId, tokenHash: null };
  }

  // Subscribed when the first stream is watched: processes without streams (workers, CLIs) never
  // hold the channel. It lasts as long as the pub/sub connection: unsubscribing at shutdown would
  // race the disconnect.
  // Viewers are cached only once the subscription is confirmed, and dropped whenever the feed
  // reconnects: changes published while it was away are lost.
  #listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    const signalled = () =>
      this.#pubsub.subscriptionsConfirmed().then(
        () => this.#viewers.setSignalled(true),
        (error: unknown) => this.#logger.warn({ err: error }, 'viewerChanged not subscribed'),
      );
    this.#pubsub.onReconnect(() => {
      this.#viewers.setSignalled(false);
      void signalled();
    });
    void (async () => {
      for await (const change of this.#pubsub.subscribe('viewerChanged')) {
        this.onViewerChanged(change);
        for (const echo of this.#echoes) {
          if (echo.change.userId === change.userId && echo.change.tokenHash === change.tokenHash)
            echo.arrived();
        }
      }
    })().catch((error: unknown) =>
      this.#logger.error({ err: error }, 'viewer change listener failed'),
    );
    // The loop above has sent its SUBSCRIBE by now (its first `next` runs synchronously).
    void signalled();
  }
}

/** The last result of a stream whose viewer changed: why it ends, without data. */
function endResult(change: ViewerChangedMessage): ExecutionResult {
  return {
    errors: [
      change.tokenHash
        ? appError('UNAUTHENTICATED', 'The token was revoked')
        : appError('VIEWER_CHANGED', 'Your role changed: subscribe again'),
    ],
  };
}

/**
 * `source`, ended as soon as its viewer changes: by the signal (within the time pub/sub takes), or
 * at the latest before the next event, which is then not delivered. A consumer that leaves is
 * released at once, without waiting for the source's next event.
 */
export function endWhenViewerChanges(
  source: AsyncIterable<ExecutionResult>,
  viewer: StreamViewer,
  streams: ViewerStreams,
  logger: Logger,
): AsyncIterableIterator<ExecutionResult> {
  return new ViewerBoundStream(source[Symbol.asyncIterator](), viewer, streams, logger);
}

/**
 * The iterator behind endWhenViewerChanges: one pending `next()` at a time, settled by the
 * source's event (after its viewer check) or by the end, whichever comes first. A Repeater did
 * this with several promises per event; with a thousand streams of one run that was a good share
 * of fan-out's CPU.
 */
class ViewerBoundStream implements AsyncIterableIterator<ExecutionResult> {
  #state: 'new' | 'open' | 'done' = 'new';
  #pending: {
    resolve(result: IteratorResult<ExecutionResult>): void;
    reject(error: unknown): void;
  } | null = null;
  /** The last result, for a `next()` still to come, when the stream ended between two. */
  #final: ExecutionResult | null = null;
  /** The check made before the first event: a change committed before `watch` is seen. */
  #firstCheck: Promise<boolean> | null = null;
  #unwatch = () => {};

  constructor(
    private readonly source: AsyncIterator<ExecutionResult>,
    private readonly viewer: StreamViewer,
    private readonly streams: ViewerStreams,
    private readonly logger: Logger,
  ) {}

  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.#state === 'new') {
      this.#state = 'open';
      this.#unwatch = this.streams.watch(this.viewer, (change) => this.#end(endResult(change)));
      this.#firstCheck = this.#changed();
    }
    const final = this.#final;
    if (final) {
      this.#final = null;
      return Promise.resolve({ value: final, done: false });
    }
    if (this.#state === 'done') return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      void this.#pull();
    });
  }

  return(value?: unknown): Promise<IteratorResult<ExecutionResult>> {
    this.#final = null;
    this.#finish();
    const pending = this.#pending;
    this.#pending = null;
    pending?.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: value as undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Settles the pending `next()` with the source's next event, once its viewer is checked. */
  async #pull(): Promise<void> {
    try {
      const first = this.#firstCheck;
      if (first) {
        this.#firstCheck = null;
        if (await first) return;
      }
      const next = await this.source.next();
      if (this.#state === 'done') return;
      if (next.done) {
        this.#finish();
        this.#settle({ value: undefined, done: true });
        return;
      }
      // The viewer's other streams usually checked this event already: no await then.
      const known = this.streams.settledChangeOf(this.viewer, next.value);
      if (known !== null && (await this.#changed(next.value))) return;
      this.#settle({ value: next.value, done: false });
    } catch (error) {
      if (this.#state === 'done') return;
      this.#finish();
      const pending = this.#pending;
      this.#pending = null;
      pending?.reject(error);
    }
  }

  #settle(result: IteratorResult<ExecutionResult>): void {
    const pending = this.#pending;
    this.#pending = null;
    pending?.resolve(result);
  }

  /**
   * Whether the viewer changed (the stream has then ended with its last result). Each event's
   * viewer is checked before it is delivered; the streams of one viewer share the check of an
   * event (ViewerStreams.changeOf).
   */
  async #changed(event?: ExecutionResult): Promise<boolean> {
    try {
      const change = await this.streams.changeOf(this.viewer, event);
      // Ends this instance's other streams of the viewer too, as the signal would.
      if (change) {
        this.streams.onViewerChanged(change);
        this.#end(endResult(change));
      }
      return change !== null || this.#state === 'done';
    } catch (error) {
      this.logger.error({ err: error }, 'could not check the viewer of a stream');
      this.#end({
        errors: [appError('INTERNAL_SERVER_ERROR', 'Unexpected error.')],
      });
      return true;
    }
  }

  /** Ends the stream with `result` as its last event: to the pending `next()`, or the next one. */
  #end(result: ExecutionResult): void {
    if (this.#state === 'done') return;
    this.#finish();
    if (this.#pending) this.#settle({ value: result, done: false });
    else this.#final = result;
  }

  /**
   * Stops watching and releases the source, without awaiting it: a source parked on its next
   * event must not hold the consumer.
   */
  #finish(): void {
    if (this.#state === 'done') return;
    const started = this.#state !== 'new';
    this.#state = 'done';
    if (started) this.#unwatch();
    Promise.resolve(this.source.return?.()).catch(() => {});
  }
}

/**
 * Ends the subscriptions of a revoked token, or of a user whose role changed, over SSE and
 * graphql-ws alike (the socket itself is closed in src/http.ts).
 */
export function useViewerStreams(): Plugin<Context> {
  return {
    onSubscribe: () => ({
      onSubscribeResult({ args, result, setResult }) {
        const ctx = args.contextValue;
        if (!ctx.viewer || !ctx.tokenHash || !isAsyncIterable<ExecutionResult>(result)) return;
        const viewer = { tokenHash: ctx.tokenHash, userId: ctx.viewer.id, role: ctx.viewer.role };
        setResult(endWhenViewerChanges(result, viewer, ctx.deps.viewerStreams, ctx.log));
      },
    }),
  };
}
