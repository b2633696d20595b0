import { Repeater } from '@repeaterjs/repeater';
import DataLoader from 'dataloader';
import { type ExecutionResult, GraphQLError } from 'graphql';
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
  readonly #checksByEvent = new WeakMap<
    object,
    Map<string, Promise<ViewerChangedMessage | null>>
  >();

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
    let checks = this.#checksByEvent.get(event);
    if (!checks) {
      checks = new Map();
      this.#checksByEvent.set(event, checks);
    }
    const key = `${viewer.tokenHash}\u0000${viewer.userId}\u0000${viewer.role}`;
    let check = checks.get(key);
    if (!check) {
      check = this.#changeOf(viewer);
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
  const iterator = source[Symbol.asyncIterator]();
  let started = false;
  const stream = new Repeater<ExecutionResult>(async (push, stop) => {
    started = true;
    let stopped = false;
    const end = (change: ViewerChangedMessage) => {
      void push(endResult(change));
      stop();
    };
    const unwatch = streams.watch(viewer, end);
    // Each event's viewer is checked before it is delivered, the first one before the first
    // event: a change committed between the context's token check and `watch` above is seen.
    const changed = async (event?: ExecutionResult) => {
      try {
        const change = await streams.changeOf(viewer, event);
        // Ends this instance's other streams of the viewer too, as the signal would.
        if (change) streams.onViewerChanged(change);
        return change !== null;
      } catch (error) {
        logger.error({ err: error }, 'could not check the viewer of a stream');
        void push({
          errors: [
            new GraphQLError('Unexpected error.', {
              extensions: { code: 'INTERNAL_SERVER_ERROR' },
            }),
          ],
        });
        stop();
        return true;
      }
    };
    const pump = async () => {
      if (await changed()) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done || stopped || (await changed(next.value))) return;
        await push(next.value);
      }
    };
    pump().then(
      () => stop(),
      (error: unknown) => stop(error),
    );
    await stop;
    stopped = true;
    unwatch();
    // Not awaited: a source parked on its next event must not hold the consumer.
    Promise.resolve(iterator.return?.()).catch(() => {});
  });
  return Object.assign(stream, {
    // A stream returned before its first `next` never ran the executor: release the source here.
    return(value?: unknown) {
      if (!started) Promise.resolve(iterator.return?.()).catch(() => {});
      return Repeater.prototype.return.call(stream, value);
    },
  });
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
