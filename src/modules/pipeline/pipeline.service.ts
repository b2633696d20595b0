import { sql } from 'kysely';
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { withPgErrors } from '../../db/pg-errors.ts';
import type { PipelineRunRow } from '../../db/tables.ts';
import { transact } from '../../db/transaction.ts';
import { appError, notFound } from '../../errors.ts';
import { defaultSteps, stepRegistry } from '../../processing/registry.ts';
import { currentTraceparent } from '../../tracing.ts';
import { parseInput } from '../../validation.ts';
import { isStaff } from '../auth/viewer.ts';
import { canSeePost, requireEditable, requireWriter } from '../post/post.policy.ts';
import { lockPost } from '../post/post.repository.ts';
import { emptyOutbox, type PipelineOutbox, publishOutbox } from './pipeline.publish.ts';
import { appendEvent, hasActiveRun, insertRun, lockRun, updateRun } from './pipeline.repository.ts';
import { cancelRun, movePost } from './pipeline.transitions.ts';

export const PIPELINE_CHANNEL = 'quire_pipeline';

const startInput = z.object({
  steps: z
    .array(
      z.string().refine((name) => stepRegistry.has(name), {
        message: 'unknown step (Query.pipelineSteps lists them)',
      }),
    )
    .min(1)
    .refine((names) => new Set(names).size === names.length, 'steps must not repeat')
    .nullish(),
  autoPublish: z.boolean().nullish(),
});

const ACTIVE_RUN_MESSAGE = 'This post already has an active pipeline run';
// The unique index backs the check made under the post lock.
const activeRunConflict = { pipeline_runs_one_active_per_post: ACTIVE_RUN_MESSAGE };

/** Writes, appends events and tells subscribers after commit: the shape of every run change. */
async function changeRun<T>(
  ctx: Context,
  work: (trx: Context['db'], outbox: PipelineOutbox) => Promise<T>,
): Promise<T> {
  return withPgErrors(
    () =>
      transact(ctx.db, async (trx, afterCommit) => {
        // Per attempt: a retried transaction must not publish the events of the rolled-back one.
        const outbox = emptyOutbox();
        const result = await work(trx, outbox);
        afterCommit(() => publishOutbox(ctx.deps.pubsub, ctx.deps.cache, outbox));
        return result;
      }),
    activeRunConflict,
  );
}

/**
 * Loads a run for a change by the viewer, its post locked first (see lockRun). A missing run
 * and a run of a post the viewer cannot see answer the same NOT_FOUND, so run ids leak nothing
 * about hidden posts; a visible run of someone else's post is FORBIDDEN.
 */
async function lockRunForEdit(
  ctx: Context,
  trx: Context['db'],
  runId: string,
): Promise<PipelineRunRow> {
  const viewer = requireWriter(ctx);
  const run = await lockRun(trx, runId);
  const post = run && (await lockPost(trx, run.post_id));
  if (!run || !post || !canSeePost(viewer, post)) throw notFound('Pipeline run');
  requireEditable(viewer, post);
  return run;
}

export async function startPipeline(
  ctx: Context,
  postId: string,
  input: { steps?: string[] | null; autoPublish?: boolean | null },
): Promise<PipelineRunRow> {
  const viewer = requireWriter(ctx);
  const { steps, autoPublish } = parseInput(startInput, input);
  await ctx.deps.rateLimiter.consume(ctx.clientKey, 'startPipeline');
  if (autoPublish && !isStaff(viewer)) throw appError('FORBIDDEN', 'Only editors can auto-publish');
  return changeRun(ctx, async (trx, outbox) => {
    requireEditable(viewer, await lockPost(trx, postId));
    if (await hasActiveRun(trx, postId)) throw appError('CONFLICT', ACTIVE_RUN_MESSAGE);
    const run = await insertRun(trx, {
      postId,
      steps: steps ?? defaultSteps,
      autoPublish: autoPublish ?? false,
      createdBy: viewer.id,
      traceparent: currentTraceparent() ?? null,
    });
    outbox.events.push(
      await appendEvent(trx, run, 'run.queued', {
        status: 'QUEUED',
        progress: 0,
        steps: run.steps,
      }),
    );
    await movePost(trx, outbox, postId, 'QUEUED');
    // Wakes idle workers at commit; they also poll, so a lost notification only delays.
    await sql`select pg_notify(${PIPELINE_CHANNEL}, ${run.id})`.execute(trx);
    return run;
  });
}

/** A queued run stops now; a running one at its next step boundary. */
export async function cancelPipeline(ctx: Context, runId: string): Promise<PipelineRunRow> {
  return changeRun(ctx, async (trx, outbox) => {
    const run = await lockRunForEdit(ctx, trx, runId);
    if (run.status === 'QUEUED') return cancelRun(trx, run, outbox);
    if (run.status !== 'RUNNING') {
      throw appError(
        'CONFLICT',
        `The run is ${run.status.toLowerCase()}; only active runs can be cancelled`,
      );
    }
    const requested = await updateRun(trx, run.id, { cancel_requested: true });
    outbox.events.push(
      await appendEvent(trx, run, 'run.cancel_requested', {
        status: 'RUNNING',
        progress: run.progress,
      }),
    );
    return requested;
  });
}

/** Re-queues a failed or cancelled run; it resumes from its first unfinished step. */
export async function retryPipeline(ctx: Context, runId: string): Promise<PipelineRunRow> {
  return changeRun(ctx, async (trx, outbox) => {
    const run = await lockRunForEdit(ctx, trx, runId);
    if (run.status !== 'FAILED' && run.status !== 'CANCELLED') {
      throw appError(
        'CONFLICT',
        `The run is ${run.status.toLowerCase()}; only failed or cancelled runs can be retried`,
      );
    }
    if (await hasActiveRun(trx, run.post_id)) throw appError('CONFLICT', ACTIVE_RUN_MESSAGE);
    await trx
      .updateTable('pipeline_steps')
      .set({ status: 'PENDING', attempt: 0, error: null, progress: 0 })
      .where('run_id', '=', run.id)
      .where('status', '!=', 'SUCCEEDED')
      .execute();
    const retried = await updateRun(trx, run.id, {
      status: 'QUEUED',
      error: null,
      cancel_requested: false,
      finished_at: null,
      run_after: sql<string>`now()`,
      traceparent: currentTraceparent() ?? null,
    });
    outbox.events.push(
      await appendEvent(trx, run, 'run.retried', { status: 'QUEUED', progress: run.progress }),
    );
    await movePost(trx, outbox, run.post_id, 'QUEUED');
    await sql`select pg_notify(${PIPELINE_CHANNEL}, ${run.id})`.execute(trx);
    return retried;
  });
}
