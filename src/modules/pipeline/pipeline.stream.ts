import DataLoader from 'dataloader';
import { decodeGlobalId } from '../../builder.ts';
import type { Context } from '../../context.ts';
import type { Db } from '../../db/database.ts';
import type { PipelineEventRow, PipelineRunRow, PostRow } from '../../db/tables.ts';
import { badInput, notFound } from '../../errors.ts';
import type { PipelineEventMessage, QuirePubSub } from '../../infra/pubsub.ts';
import { lastEventId } from '../../plugins/sse.ts';
import { canSeePost } from '../post/post.policy.ts';
import { postsByIds } from '../post/post.repository.ts';
import { eventsAfter, eventsByIds, runsByIds, toEventMessage } from './pipeline.repository.ts';

const TERMINAL_EVENTS = new Set(['run.succeeded', 'run.failed', 'run.cancelled']);

/** How long a read waits for the other streams that need the same one (see SharedReads). */
const SHARED_READ_WINDOW_MS = 2;

/**
 * The reads a stream makes to start and to catch up, shared by the streams that make the same
 * one within SHARED_READ_WINDOW_MS: a thousand subscribers of one run connecting at once (a
 * deploy's reconnect storm) or resyncing together cost a few statements, not a thousand each,
 * which queued past the pool's connect timeout. A read starts only after every load it answers
 * was asked for, so a stream that asks once its subscription is confirmed still reads the table
 * after that point (the no-gap rule below).
 */
class SharedReads {
  readonly runs: DataLoader<string, PipelineRunRow | undefined>;
  readonly posts: DataLoader<string, PostRow | undefined>;
  /** Keyed `<run id>\u0000<seq>`: the events of the run after that seq. */
  readonly eventsAfter: DataLoader<string, PipelineEventRow[]>;

  constructor(db: Db) {
    const options = {
      cache: false,
      batchScheduleFn: (callback: () => void) => setTimeout(callback, SHARED_READ_WINDOW_MS),
    };
    this.runs = new DataLoader(async (ids) => {
      const rows = await runsByIds(db, [...new Set(ids)]);
      return ids.map((id) => rows.find((row) => row.id === id));
    }, options);
    this.posts = new DataLoader(async (ids) => {
      const rows = await postsByIds(db, [...new Set(ids)]);
      return ids.map((id) => rows.find((row) => row.id === id));
    }, options);
    this.eventsAfter = new DataLoader(async (keys) => {
      const reads = new Map<string, Promise<PipelineEventRow[]>>();
      for (const key of new Set(keys)) {
        const [runId, seq] = key.split('\u0000') as [string, string];
        reads.set(key, eventsAfter(db, runId, Number(seq)));
      }
      return Promise.all(keys.map((key) => reads.get(key)!));
    }, options);
  }
}

const sharedReadsByDb = new WeakMap<Db, SharedReads>();
function sharedReads(db: Db): SharedReads {
  let reads = sharedReadsByDb.get(db);
  if (!reads) {
    reads = new SharedReads(db);
    sharedReadsByDb.set(db, reads);
  }
  return reads;
}

/**
 * A stream with nothing new for this long re-reads the table: a publish lost on the way (the
 * publisher's Redis connection dropped while ours stayed up) would otherwise leave it waiting
 * forever, possibly for the terminal event. One indexed read per idle stream per period.
 */
const IDLE_RESYNC_MS = 5000;
/** Longest wait for the broker to confirm the subscription before reading the table anyway. */
const CONFIRM_WAIT_MS = 1000;

/**
 * The event id a stream resumes after: the SSE request's `Last-Event-ID` header when it has one,
 * else the `afterEventId` argument (however the document wrote it: variable of any name,
 * literal, or absent). The header wins: an EventSource reconnect repeats its original request,
 * argument included, and adds the header saying how far it got. BAD_USER_INPUT for a header
 * that is not a PipelineEvent id.
 */
export function resumeAfter(ctx: Context, afterEventId: string | null): string | null {
  const header = lastEventId(ctx);
  if (header === null) return afterEventId;
  const decoded = (() => {
    try {
      return decodeGlobalId(header);
    } catch {
      return null;
    }
  })();
  if (decoded?.typename !== 'PipelineEvent') {
    throw badInput('Last-Event-ID is not a pipeline event id', { argument: 'afterEventId' });
  }
  return decoded.id;
}

/** Events a stream holds for a consumer that reads slower than they come; see RunEventStream. */
export const STREAM_BUFFER = 1024;

/**
 * The message of a stored row, one per row object: streams that shared a read (SharedReads)
 * then hand their consumers the same message, whose execution they share too.
 */
const messagesByRow = new WeakMap<PipelineEventRow, PipelineEventMessage>();
function messageOf(row: PipelineEventRow, postId: string): PipelineEventMessage {
  let message = messagesByRow.get(row);
  if (!message) {
    message = toEventMessage(row, postId);
    messagesByRow.set(row, message);
  }
  return message;
}

/**
 * Replays stored events after `afterEventId`, then goes live, with no gap and no duplicate.
 * Checks run before anything is subscribed, so a refused stream (NOT_FOUND for a run the viewer
 * may not see, BAD_USER_INPUT for an event of another run) is an error result that holds nothing.
 *
 * `pipeline_events` is the source of truth and per-run `seq` is gapless: events leave in `seq`
 * order only, a live event is used only when it is exactly the next one, and the table is
 * re-read whenever the live feed could have missed something (at the start once the broker
 * confirmed the subscription, on a skipped `seq`, after the broker reconnects, after the buffer
 * overflowed, and when idle for IDLE_RESYNC_MS). Ends after the run's terminal event. A
 * consumer's `return()` ends it at once, whatever it was waiting for, and releases the live
 * subscription.
 */
export async function streamRunEvents(
  ctx: Context,
  runId: string,
  afterEventId: string | null,
): Promise<AsyncIterableIterator<PipelineEventMessage>> {
  const reads = sharedReads(ctx.deps.db);
  const run = await reads.runs.load(runId);
  const post = run ? await reads.posts.load(run.post_id) : undefined;
  if (!run || !post || !canSeePost(ctx.viewer, post)) throw notFound('Pipeline run');
  let lastSeq = 0;
  let lastType: string | null = null;
  if (afterEventId) {
    const [after] = await eventsByIds(ctx.db, [afterEventId]);
    if (!after || after.run_id !== runId) {
      throw badInput('afterEventId is not an event of this run', { argument: 'afterEventId' });
    }
    lastSeq = after.seq;
    lastType = after.type;
  }
  return new RunEventStream(ctx.deps.pubsub, reads, run.id, run.post_id, lastSeq, lastType);
}

/**
 * One subscriber's events of a run, as an async iterator without a promise chain per event: the
 * live feed calls `#onLive` synchronously for each message (pubsub `listen`), which queues it
 * when it is exactly the next `seq` and asks for a re-read of the table otherwise; `next()` takes
 * from the queue. At most STREAM_BUFFER events wait for a slow consumer: past that, live events
 * are not queued (memory stays bounded) and the table is re-read once the consumer has drained
 * the queue, so it still receives every event, in order, late. Listens from its first `next()`.
 */
class RunEventStream implements AsyncIterableIterator<PipelineEventMessage> {
  readonly #queue: PipelineEventMessage[] = [];
  #waiting: {
    resolve(result: IteratorResult<PipelineEventMessage>): void;
    reject(error: unknown): void;
  } | null = null;
  #state: 'new' | 'open' | 'ending' | 'done' = 'new';
  #failure: { error: unknown } | null = null;
  /** Set when the table must be read again; the reader loops while it is set. */
  #resync = true;
  #reading = false;
  /** Live events were left out because the queue was full. */
  #overflowed = false;
  #lastQueuedAt = 0;
  /** The type of the last event queued (or resumed after). */
  #lastType: string | null;
  #unlisten = () => {};
  #offReconnect = () => {};
  #idle: NodeJS.Timeout | undefined;
  #confirmTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pubsub: QuirePubSub,
    private readonly reads: SharedReads,
    private readonly runId: string,
    private readonly postId: string,
    /** The `seq` of the last event queued (or resumed after): the next one is this + 1. */
    private queuedSeq: number,
    /** The type of the event resumed after, if any. */
    resumedType: string | null,
  ) {
    this.#lastType = resumedType;
  }

  /** Events waiting for the consumer: at most STREAM_BUFFER. */
  get buffered(): number {
    return this.#queue.length;
  }

  next(): Promise<IteratorResult<PipelineEventMessage>> {
    if (this.#state === 'new') this.#open();
    const value = this.#queue.shift();
    if (value) {
      if (this.#queue.length === 0) this.#drained();
      return Promise.resolve({ value, done: false });
    }
    if (this.#failure) {
      const { error } = this.#failure;
      this.#finish();
      return Promise.reject(error);
    }
    if (this.#state === 'ending' || this.#state === 'done') {
      this.#finish();
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  return(value?: unknown): Promise<IteratorResult<PipelineEventMessage>> {
    this.#finish();
    return Promise.resolve({ value: value as undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<PipelineEventMessage>> {
    this.#finish();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #open(): void {
    this.#state = 'open';
    // Listening before the table is read: nothing published in between is missed.
    this.#unlisten = this.pubsub.listen('pipelineRun', this.runId, (event) => this.#onLive(event));
    this.#offReconnect = this.pubsub.onReconnect(() => this.#requestResync());
    this.#lastQueuedAt = Date.now();
    this.#armIdle(IDLE_RESYNC_MS);
    void this.#read();
  }

  /**
   * Re-reads the table IDLE_RESYNC_MS after the last queued event. The timer is re-armed when it
   * fires rather than moved on every event: a thousand streams of one run then cost no timer
   * work per event.
   */
  #armIdle(delay: number): void {
    this.#idle = setTimeout(() => {
      if (this.#state !== 'open') return;
      const idle = Date.now() - this.#lastQueuedAt;
      if (idle < IDLE_RESYNC_MS) return this.#armIdle(IDLE_RESYNC_MS - idle);
      this.#requestResync();
      this.#armIdle(IDLE_RESYNC_MS);
    }, delay);
  }

  #onLive(event: PipelineEventMessage): void {
    if (this.#state !== 'open' || event.seq <= this.queuedSeq) return;
    if (event.seq > this.queuedSeq + 1 || this.#overflowed) this.#requestResync();
    else this.#push(event);
  }

  /** Queues the next event in `seq` order, or hands it to a waiting `next()`. */
  #push(event: PipelineEventMessage): void {
    const waiting = this.#waiting;
    if (!waiting && this.#queue.length >= STREAM_BUFFER) {
      // Not queued: the consumer gets it from the table once it has caught up (#drained).
      this.#overflowed = true;
      return;
    }
    this.queuedSeq = event.seq;
    this.#lastType = event.type;
    this.#lastQueuedAt = Date.now();
    if (waiting) {
      this.#waiting = null;
      waiting.resolve({ value: event, done: false });
    } else this.#queue.push(event);
    if (TERMINAL_EVENTS.has(event.type)) this.#end();
  }

  /** The consumer emptied the queue: what overflowed is read from the table now. */
  #drained(): void {
    if (!this.#overflowed) return;
    this.#overflowed = false;
    this.#requestResync();
  }

  #requestResync(): void {
    if (this.#state !== 'open') return;
    this.#resync = true;
    if (!this.#reading) void this.#read();
  }

  /** Reads the table after queuedSeq until it has nothing more, while a re-read is asked for. */
  async #read(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#resync && this.#state === 'open') {
        this.#resync = false;
        await this.#confirmed();
        for (;;) {
          if (this.#state !== 'open' || this.#overflowed) break;
          const rows = await this.reads.eventsAfter.load(`${this.runId}\u0000${this.queuedSeq}`);
          if (this.#state !== 'open') break;
          const fresh = rows.filter((row) => row.seq > this.queuedSeq);
          if (fresh.length === 0) break;
          for (const row of fresh) {
            if (this.#state !== 'open' || this.#overflowed) break;
            // A live event queued meanwhile may have moved queuedSeq past this row.
            if (row.seq === this.queuedSeq + 1) this.#push(messageOf(row, this.postId));
          }
        }
        // Resuming after the terminal event of a run nobody retried: nothing more will come.
        if (this.#lastType && TERMINAL_EVENTS.has(this.#lastType)) this.#end();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#reading = false;
    }
  }

  /** The broker has confirmed the live subscription, or CONFIRM_WAIT_MS passed. */
  async #confirmed(): Promise<void> {
    await Promise.race([
      this.pubsub.subscriptionsConfirmed().catch(() => {}),
      new Promise((resolve) => {
        this.#confirmTimer = setTimeout(resolve, CONFIRM_WAIT_MS);
      }),
    ]);
    clearTimeout(this.#confirmTimer);
  }

  /** Nothing more is taken; what is queued is still handed out, then the stream is done. */
  #end(): void {
    if (this.#state !== 'open') return;
    this.#state = 'ending';
    this.#release();
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.resolve({ value: undefined, done: true });
  }

  /** A read failed: the consumer gets what is queued, then the error. */
  #fail(error: unknown): void {
    if (this.#state !== 'open') return;
    this.#state = 'ending';
    this.#failure = { error };
    this.#release();
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting) {
      this.#finish();
      waiting.reject(error);
    }
  }

  #release(): void {
    this.#unlisten();
    this.#offReconnect();
    clearTimeout(this.#idle);
    clearTimeout(this.#confirmTimer);
  }

  #finish(): void {
    if (this.#state !== 'done') this.#release();
    this.#state = 'done';
    this.#queue.length = 0;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.resolve({ value: undefined, done: true });
  }
}
