import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import type { PipelineRunRow, PostStatus } from '../../db/tables.ts';
import type { PipelineOutbox } from './pipeline.publish.ts';
import { appendEvent, setPostPipelineStatus, updateRun } from './pipeline.repository.ts';

/** Moves the post with its run (a published post stays published) and tells subscribers. */
export async function movePost(
  trx: Db,
  outbox: PipelineOutbox,
  postId: string,
  status: PostStatus,
) {
  const changed = await setPostPipelineStatus(trx, postId, status);
  if (changed) {
    outbox.statusChanges.push({
      postId: changed.id,
      authorId: changed.author_id,
      status: changed.status,
    });
  }
}

/** Ends a run as CANCELLED with its unfinished steps; the caller holds the run lock. */
export async function cancelRun(
  trx: Db,
  run: PipelineRunRow,
  outbox: PipelineOutbox,
): Promise<PipelineRunRow> {
  const cancelled = await updateRun(trx, run.id, {
    status: 'CANCELLED',
    finished_at: sql<string>`now()`,
    current_step: null,
    locked_by: null,
    locked_until: null,
  });
  await trx
    .updateTable('pipeline_steps')
    .set({ status: 'CANCELLED' })
    .where('run_id', '=', run.id)
    .where('status', 'in', ['PENDING', 'RUNNING'])
    .execute();
  outbox.events.push(
    await appendEvent(trx, run, 'run.cancelled', { status: 'CANCELLED', progress: run.progress }),
  );
  await movePost(trx, outbox, run.post_id, 'DRAFT');
  return cancelled;
}
