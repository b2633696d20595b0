import type { Context } from '../../context.ts';
import { badInput, notFound } from '../../errors.ts';
import type { PipelineEventMessage } from '../../infra/pubsub.ts';
import { canSeePost } from '../post/post.policy.ts';
import { postsByIds } from '../post/post.repository.ts';
import { eventsAfter, eventsByIds, runsByIds, toEventMessage } from './pipeline.repository.ts';

const TERMINAL_EVENTS = new Set(['run.succeeded', 'run.failed', 'run.cancelled']);

/**
 * Replays stored events after `afterEventId`, then goes live, with no gap and no duplicate:
 * subscribe first, replay second, and drop live events the replay already covered. Per-run `seq`
 * is gapless, so a live event that skips ahead (a slow publisher, a dropped buffer entry) is
 * refilled from the table. Ends after the run's terminal event.
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
  if (afterEventId) {
    const [after] = await eventsByIds(ctx.db, [afterEventId]);
    if (!after || after.run_id !== runId) {
      throw badInput('afterEventId is not an event of this run', { argument: 'afterEventId' });
    }
    lastSeq = after.seq;
  }
  const live = ctx.deps.pubsub.subscribe('pipelineRun', runId);
  try {
    const stored = async () => {
      const events: PipelineEventMessage[] = [];
      for (let seq = lastSeq; ; ) {
        const rows = await eventsAfter(ctx.db, runId, seq);
        if (rows.length === 0) return events;
        events.push(...rows.map((row) => toEventMessage(row, run.post_id)));
        seq = rows.at(-1)!.seq;
      }
    };
    for (const event of await stored()) {
      lastSeq = event.seq;
      yield event;
      if (TERMINAL_EVENTS.has(event.type)) return;
    }
    for await (const event of live) {
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
