import type { Context } from '../../context.ts';
import { badInput, notFound } from '../../errors.ts';
import type { PipelineEventMessage } from '../../infra/pubsub.ts';
import { canSeePost } from '../post/post.policy.ts';
import { postsByIds } from '../post/post.repository.ts';
import { eventsAfter, eventsByIds, runsByIds, toEventMessage } from './pipeline.repository.ts';

const TERMINAL_EVENTS = new Set(['run.succeeded', 'run.failed', 'run.cancelled']);

/**
 * Replays stored events after `afterEventId`, then goes live, with no gap and no duplicate:
 * listen first (and wait until the broker confirms it), replay second, and drop live events the
 * replay already covered. Per-run `seq` is gapless, so a live event that skips ahead (a dropped
 * buffer entry) is refilled from the table. Ends after the run's terminal event.
 */
export async function* streamRunEvents(
  ctx: Context,
  runId: string,
  afterEventId: string | null,
): AsyncGenerator<PipelineEventMessage> {
  const [run] = await runsByIds(ctx.db, [runId]);
  const [post] = run ? await postsByIds(ctx.db, [run.post_id]) : [];
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
  const live = ctx.deps.pubsub.subscribe('pipelineRun', runId);
  // A Repeater attaches its listener on the first next(), so start it before reading the table.
  let nextLive = live.next();
  try {
    await ctx.deps.pubsub.subscriptionsConfirmed();
    const stored = async () => {
      const events: PipelineEventMessage[] = [];
      for (let seq = lastSeq; ; ) {
        const rows = await eventsAfter(ctx.db, runId, seq);
        if (rows.length === 0) return events;
        events.push(...rows.map((row) => toEventMessage(row, run.post_id)));
        seq = rows.at(-1)!.seq;
      }
    };
    const replayed = await stored();
    // Resuming after the terminal event of a run nobody retried: nothing more will come.
    if (replayed.length === 0 && lastType && TERMINAL_EVENTS.has(lastType)) return;
    for (const event of replayed) {
      lastSeq = event.seq;
      yield event;
      if (TERMINAL_EVENTS.has(event.type)) return;
    }
    for (;;) {
      const { value: event, done } = await nextLive;
      if (done) return;
      nextLive = live.next();
      if (event.seq <= lastSeq) continue;
      const pending = event.seq === lastSeq + 1 ? [event] : await stored();
      for (const next of pending) {
        lastSeq = next.seq;
        yield next;
        if (TERMINAL_EVENTS.has(next.type)) return;
      }
    }
  } finally {
    await live.return();
  }
}
