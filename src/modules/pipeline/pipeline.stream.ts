import { Repeater } from '@repeaterjs/repeater';
import DataLoader from 'dataloader';
import { decodeGlobalId } from '../../builder.ts';
import type { Context } from '../../context.ts';
import type { Db } from '../../db/database.ts';
import type { PipelineEventRow, PipelineRunRow, PostRow } from '../../db/tables.ts';
import { badInput, notFound } from '../../errors.ts';
import type { PipelineEventMessage } from '../../infra/pubsub.ts';
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

/**
 * Replays stored events after `afterEventId`, then goes live, with no gap and no duplicate.
 * Checks run before anything is subscribed, so a refused stream (NOT_FOUND for a run the viewer
 * may not see, BAD_USER_INPUT for an event of another run) is an error result that holds nothing.
 *
 * `pipeline_events` is the source of truth and per-run `seq` is gapless: events leave in `seq`
 * order only, a live event is used only when it is exactly the next one, and the table is
 * re-read whenever the live feed could have missed something (at the start once the broker
 * confirmed the subscription, on a skipped `seq`, after the broker reconnects, and when idle for
 * IDLE_RESYNC_MS). Ends after the run's terminal event. Built on a Repeater, so a consumer's
 * `return()` ends it at once, whatever it was waiting for, and releases the live subscription.
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
  const { pubsub } = ctx.deps;
  return new Repeater<PipelineEventMessage>(async (push, stop) => {
    let over = false;
    const stopped = stop.then(() => {
      over = true;
      return 'stopped' as const;
    });
    const live = pubsub.subscribe('pipelineRun', runId);
    // The feed attaches its listener on the first next(), so start it before reading the table.
    let nextLive = live.next();
    let resync = true;
    let wake = () => {};
    const requestResync = () => {
      resync = true;
      wake();
    };
    const offReconnect = pubsub.onReconnect(requestResync);
    const idle = setInterval(requestResync, IDLE_RESYNC_MS);
    const confirmed = async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pubsub.subscriptionsConfirmed().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, CONFIRM_WAIT_MS);
        }),
        stopped,
      ]);
      clearTimeout(timer);
    };
    /** Sends one event; true once the stream is over (terminal event, or the consumer left). */
    const deliver = async (event: PipelineEventMessage) => {
      lastSeq = event.seq;
      lastType = event.type;
      idle.refresh();
      await push(event);
      return over || TERMINAL_EVENTS.has(event.type);
    };
    /** Sends every stored event after lastSeq; true once the stream is over. */
    const catchUp = async () => {
      for (;;) {
        const rows = await reads.eventsAfter.load(`${runId}\u0000${lastSeq}`);
        if (over) return true;
        if (rows.length === 0) return false;
        for (const row of rows) if (await deliver(toEventMessage(row, run.post_id))) return true;
      }
    };
    try {
      for (;;) {
        if (resync) {
          resync = false;
          await confirmed();
          if (await catchUp()) return;
          // Resuming after the terminal event of a run nobody retried: nothing more will come.
          if (lastType && TERMINAL_EVENTS.has(lastType)) return;
        }
        const woken = new Promise<'resync'>((resolve) => {
          wake = () => resolve('resync');
        });
        const next = await Promise.race([nextLive, woken, stopped]);
        if (next === 'stopped' || over) return;
        if (next === 'resync') continue;
        if (next.done) return;
        nextLive = live.next();
        const event = next.value;
        if (event.seq <= lastSeq) continue;
        if (event.seq > lastSeq + 1) resync = true;
        else if (await deliver(event)) return;
      }
    } finally {
      clearInterval(idle);
      offReconnect();
      stop();
      await live.return();
    }
  });
}
