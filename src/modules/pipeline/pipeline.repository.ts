import { sql, type UpdateObject } from 'kysely';
import type { Db } from '../../db/database.ts';
import { type KeysetOrder, keysetClauses, type PageRequest } from '../../db/keyset.ts';
import { childrenOfParents } from '../../db/lateral.ts';
import type {
  Database,
  PipelineEventRow,
  PipelineRunRow,
  PipelineStepRow,
  PostStatus,
} from '../../db/tables.ts';
import type { PipelineEventMessage } from '../../infra/pubsub.ts';

export const runOrder: KeysetOrder = {
  name: 'run:CREATED_AT:DESC',
  expression: sql.ref('pipeline_runs.created_at'),
  kind: 'timestamp',
  direction: 'desc',
  idColumn: 'pipeline_runs.id',
};

export const eventOrder: KeysetOrder = {
  name: 'event:SEQ:ASC',
  expression: sql.ref('pipeline_events.seq'),
  kind: 'integer',
  direction: 'asc',
  idColumn: 'pipeline_events.id',
};

export async function runsByIds(db: Db, ids: readonly string[]): Promise<PipelineRunRow[]> {
  return db.selectFrom('pipeline_runs').selectAll().where('id', 'in', ids).execute();
}

/**
 * Locks the run's post, then the run. Every writer that touches both takes the post first
 * (startPipeline, post edits and deletes, the worker), so none can wait on another in a cycle;
 * events are appended under the run lock, so `seq` is gapless and ordered.
 */
export async function lockRun(db: Db, id: string): Promise<PipelineRunRow | undefined> {
  await db
    .selectFrom('posts')
    .select('id')
    .where('id', '=', db.selectFrom('pipeline_runs').select('post_id').where('id', '=', id))
    .forUpdate()
    .execute();
  return db
    .selectFrom('pipeline_runs')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export async function runPagesByPosts(
  db: Db,
  postIds: readonly string[],
  page: PageRequest,
): Promise<PipelineRunRow[]> {
  const { condition, orderBy, limit } = keysetClauses(runOrder, page);
  return childrenOfParents(db, postIds, (postId) =>
    db
      .selectFrom('pipeline_runs')
      .selectAll()
      .where('pipeline_runs.post_id', '=', postId)
      .where(condition)
      .orderBy(orderBy)
      .limit(limit),
  );
}

export async function countRunsByPosts(
  db: Db,
  postIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('pipeline_runs')
    .select(['post_id', (eb) => eb.fn.countAll<string>().as('count')])
    .where('post_id', 'in', postIds)
    .groupBy('post_id')
    .execute();
  return new Map(rows.map((row) => [row.post_id, Number(row.count)]));
}

export async function latestRunsByPosts(
  db: Db,
  postIds: readonly string[],
): Promise<PipelineRunRow[]> {
  return db
    .selectFrom('pipeline_runs')
    .selectAll()
    .distinctOn('post_id')
    .where('post_id', 'in', postIds)
    .orderBy('post_id')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
}

export async function stepsByRuns(db: Db, runIds: readonly string[]): Promise<PipelineStepRow[]> {
  return db
    .selectFrom('pipeline_steps')
    .selectAll()
    .where('run_id', 'in', runIds)
    .orderBy('run_id')
    .orderBy('position')
    .execute();
}

export async function eventsAfter(
  db: Db,
  runId: string,
  afterSeq: number,
  limit = 1000,
): Promise<PipelineEventRow[]> {
  return db
    .selectFrom('pipeline_events')
    .selectAll()
    .where('run_id', '=', runId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
}

export async function eventsByIds(
  db: Db,
  ids: readonly string[],
): Promise<(PipelineEventRow & { post_id: string })[]> {
  return db
    .selectFrom('pipeline_events')
    .innerJoin('pipeline_runs', 'pipeline_runs.id', 'pipeline_events.run_id')
    .selectAll('pipeline_events')
    .select('pipeline_runs.post_id')
    .where('pipeline_events.id', 'in', ids)
    .execute();
}

/** `seq` is gapless from 1, so the highest one is the count. */
export async function countEventsByRuns(
  db: Db,
  runIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('pipeline_events')
    .select(['run_id', (eb) => eb.fn.max('seq').as('count')])
    .where('run_id', 'in', runIds)
    .groupBy('run_id')
    .execute();
  return new Map(rows.map((row) => [row.run_id, Number(row.count)]));
}

/** A page of each run's events in sequence order, in one statement. */
export async function eventPagesByRuns(
  db: Db,
  runIds: readonly string[],
  page: PageRequest,
): Promise<(PipelineEventRow & { post_id: string })[]> {
  const { condition, orderBy, limit } = keysetClauses(eventOrder, page);
  return childrenOfParents(db, runIds, (runId) =>
    db
      .selectFrom('pipeline_events')
      .innerJoin('pipeline_runs', 'pipeline_runs.id', 'pipeline_events.run_id')
      .selectAll('pipeline_events')
      .select('pipeline_runs.post_id')
      .where('pipeline_events.run_id', '=', runId)
      .where(condition)
      .orderBy(orderBy)
      .limit(limit),
  );
}

export function toEventMessage(row: PipelineEventRow, postId: string): PipelineEventMessage {
  return {
    id: row.id,
    runId: row.run_id,
    postId,
    seq: row.seq,
    type: row.type,
    payload: row.payload,
    createdAt: row.created_at,
  };
}

/** Appends an event; call with the run locked (see lockRun). */
export async function appendEvent(
  db: Db,
  run: Pick<PipelineRunRow, 'id' | 'post_id'>,
  type: string,
  payload: Record<string, unknown>,
): Promise<PipelineEventMessage> {
  const row = await db
    .insertInto('pipeline_events')
    .values({
      run_id: run.id,
      type,
      payload: JSON.stringify(payload),
      seq: sql<number>`(select coalesce(max(seq), 0) + 1 from pipeline_events where run_id = ${run.id})`,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toEventMessage(row, run.post_id);
}

/**
 * Whether the post has a queued or running run. Exact when the caller holds the post lock:
 * only startPipeline and retryPipeline make a run active, and both take that lock first.
 */
export async function hasActiveRun(db: Db, postId: string): Promise<boolean> {
  const row = await db
    .selectFrom('pipeline_runs')
    .select('id')
    .where('post_id', '=', postId)
    .where('status', 'in', ['QUEUED', 'RUNNING'])
    .executeTakeFirst();
  return row !== undefined;
}

export async function insertRun(
  db: Db,
  run: {
    postId: string;
    steps: readonly string[];
    autoPublish: boolean;
    createdBy: string;
    traceparent: string | null;
  },
): Promise<PipelineRunRow> {
  const created = await db
    .insertInto('pipeline_runs')
    .values({
      post_id: run.postId,
      steps: [...run.steps],
      auto_publish: run.autoPublish,
      created_by: run.createdBy,
      traceparent: run.traceparent,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await db
    .insertInto('pipeline_steps')
    .values(run.steps.map((name, position) => ({ run_id: created.id, position, name })))
    .execute();
  return created;
}

export async function updateRun(
  db: Db,
  id: string,
  changes: UpdateObject<Database, 'pipeline_runs'>,
): Promise<PipelineRunRow> {
  return db
    .updateTable('pipeline_runs')
    .set(changes)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Sets the post's pipeline-driven status; a published post stays published while it is
 * reprocessed, so readers never lose it.
 */
export async function setPostPipelineStatus(
  db: Db,
  postId: string,
  status: PostStatus,
): Promise<{ id: string; author_id: string; status: PostStatus } | undefined> {
  return db
    .updateTable('posts')
    .set({ status, updated_at: sql<string>`now()` })
    .where('id', '=', postId)
    .where('status', '!=', 'PUBLISHED')
    .where('status', '!=', status)
    .returning(['id', 'author_id', 'status'])
    .executeTakeFirst();
}

/**
 * Claims one runnable run: queued and due, or running with an expired lease (its worker died).
 * It locks the run and its post (the claim moves the post) without waiting: SKIP LOCKED lets any
 * number of workers claim concurrently, and a post busy in another write is claimed next poll
 * instead of holding the run while waiting for the post (the reverse of every writer's order).
 */
export async function claimNextRun(
  db: Db,
  workerId: string,
  leaseMs: number,
): Promise<PipelineRunRow | undefined> {
  return db
    .updateTable('pipeline_runs')
    .set({
      status: 'RUNNING',
      locked_by: workerId,
      locked_until: sql<string>`now() + ${`${leaseMs} milliseconds`}::interval`,
      attempt: sql<number>`attempt + 1`,
      started_at: sql<string>`coalesce(started_at, now())`,
    })
    .where(
      'id',
      '=',
      db
        .selectFrom('pipeline_runs')
        .innerJoin('posts', 'posts.id', 'pipeline_runs.post_id')
        .select('pipeline_runs.id')
        .where((eb) =>
          eb.or([
            eb.and([
              eb('pipeline_runs.status', '=', 'QUEUED'),
              eb('pipeline_runs.run_after', '<=', sql<string>`now()`),
            ]),
            eb.and([
              eb('pipeline_runs.status', '=', 'RUNNING'),
              eb('pipeline_runs.locked_until', '<', sql<string>`now()`),
            ]),
          ]),
        )
        .orderBy('pipeline_runs.run_after')
        .orderBy('pipeline_runs.id')
        .limit(1)
        .forUpdate(['pipeline_runs', 'posts'])
        .skipLocked(),
    )
    .returningAll()
    .executeTakeFirst();
}

/** Extends the lease; false when another worker took the run over. */
export async function extendLease(
  db: Db,
  runId: string,
  workerId: string,
  leaseMs: number,
): Promise<boolean> {
  const row = await db
    .updateTable('pipeline_runs')
    .set({ locked_until: sql<string>`now() + ${`${leaseMs} milliseconds`}::interval` })
    .where('id', '=', runId)
    .where('locked_by', '=', workerId)
    .where('status', '=', 'RUNNING')
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

export async function updateStep(
  db: Db,
  runId: string,
  position: number,
  changes: UpdateObject<Database, 'pipeline_steps'>,
): Promise<void> {
  await db
    .updateTable('pipeline_steps')
    .set(changes)
    .where('run_id', '=', runId)
    .where('position', '=', position)
    .execute();
}

export async function countQueuedRuns(db: Db): Promise<number> {
  const { count } = await db
    .selectFrom('pipeline_runs')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('status', '=', 'QUEUED')
    .where('run_after', '<=', sql<string>`now()`)
    .executeTakeFirstOrThrow();
  return Number(count);
}
