import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { sql } from 'kysely';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { PipelineRunRow, PipelineStepRow } from '../db/tables.ts';
import { transact } from '../db/transaction.ts';
import type { Cache } from '../infra/cache.ts';
import type { Logger } from '../infra/logger.ts';
import type { Metrics } from '../infra/metrics.ts';
import type { PostgresListener } from '../infra/pg-listener.ts';
import type { QuirePubSub } from '../infra/pubsub.ts';
import {
  emptyOutbox,
  type PipelineOutbox,
  publishOutbox,
} from '../modules/pipeline/pipeline.publish.ts';
import {
  appendEvent,
  claimNextRun,
  extendLease,
  lockRun,
  stepsByRuns,
  updateRun,
  updateStep,
} from '../modules/pipeline/pipeline.repository.ts';
import { PIPELINE_CHANNEL } from '../modules/pipeline/pipeline.service.ts';
import { cancelRun, movePost } from '../modules/pipeline/pipeline.transitions.ts';
import { postsByIds } from '../modules/post/post.repository.ts';
import { inSpan, linksTo } from '../tracing.ts';
import { stepRegistry } from './registry.ts';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  db: Db;
  pubsub: QuirePubSub;
  cache: Cache;
  metrics?: Metrics;
  /**
   * The process's LISTEN connection: an idle worker wakes on PIPELINE_CHANNEL (a run queued or
   * retried) instead of waiting for the next poll, and polls at once whenever LISTEN runs again.
   */
  listener: PostgresListener;
}

/** The run was taken over (lease expired) or is no longer running: stop without writing. */
class RunLost extends Error {}

type Emit = (type: string, payload: Record<string, unknown>) => Promise<void>;

/**
 * Executes pipeline runs claimed from Postgres (`FOR UPDATE SKIP LOCKED` with a lease). Each step's
 * result is committed together with its SUCCEEDED mark and its event, so a crash mid-step leaves
 * the step to be rerun elsewhere and nothing half-applied.
 */
export class PipelineWorker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly inFlight = new Map<string, Promise<void>>();
  private stopping = false;
  /** Aborts the steps in flight at shutdown, so their runs go back to the queue at once. */
  private readonly halt = new AbortController();
  /** Aborted by a wake-up: replaced before each claiming round, so a wake during one is kept. */
  private wake = new AbortController();
  private unlisten: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly deps: WorkerDeps) {
    this.log = deps.logger.child({ component: 'worker', worker: this.id });
  }

  /** Highest number of runs this worker executed at the same time (reported in metrics). */
  maxConcurrent = 0;

  /**
   * Listens for new runs (one worker per process: the channel has one handler), then claims.
   * Should the LISTEN connection be unavailable, the worker polls until it is back.
   */
  async start(): Promise<void> {
    this.unlisten = this.deps.listener.listen(PIPELINE_CHANNEL, {
      notification: () => this.wakeUp(),
      // Postgres kept no notification from before LISTEN ran (at start, or during a loss): a run
      // queued then went unheard, so claim now rather than at the next poll.
      listening: () => this.wakeUp(),
      // Polling alone until it is back; the listener logs the loss.
      down: () => {},
    });
    // A failure is the listener's to log and retry; its `listening` then wakes the loop.
    await this.deps.listener.confirmed(PIPELINE_CHANNEL).catch(() => {});
    this.loop = this.run();
    this.log.info(
      { concurrency: this.deps.config.PIPELINE_CONCURRENCY },
      'pipeline worker started',
    );
  }

  /**
   * Stops claiming; running steps are aborted (a step that does not honour its signal finishes)
   * and their runs go back to the queue, resuming at that step on the next claim.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unlisten?.();
    this.halt.abort();
    this.wakeUp();
    await this.loop;
    await Promise.allSettled(this.inFlight.values());
  }

  /** Ends the loop's wait (or the next one, if it is claiming): it claims again at once. */
  private wakeUp(): void {
    this.wake.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.wake = new AbortController();
      try {
        await this.fill();
      } catch (error) {
        this.log.error({ err: error }, 'claiming pipeline runs failed');
      }
      await sleep(this.deps.config.PIPELINE_POLL_MS, undefined, {
        signal: this.wake.signal,
      }).catch(() => {});
    }
  }

  private async fill(): Promise<void> {
    const { config } = this.deps;
    while (!this.stopping && this.inFlight.size < config.PIPELINE_CONCURRENCY) {
      const run = await this.claim();
      if (!run) return;
      const execution = this.execute(run)
        .catch((error: unknown) => {
          if (!(error instanceof RunLost))
            this.log.error({ err: error, runId: run.id }, 'pipeline run crashed');
        })
        .finally(() => {
          this.inFlight.delete(run.id);
          this.wakeUp();
        });
      this.inFlight.set(run.id, execution);
      this.maxConcurrent = Math.max(this.maxConcurrent, this.inFlight.size);
    }
  }

  /** Claiming is a state change like any other: its event and the post's move commit with it. */
  private async claim(): Promise<PipelineRunRow | undefined> {
    const { db, config } = this.deps;
    return transact(db, async (trx, afterCommit) => {
      const outbox = emptyOutbox();
      const run = await claimNextRun(trx, this.id, config.PIPELINE_LEASE_MS);
      if (!run) return undefined;
      outbox.events.push(
        await appendEvent(trx, run, 'run.started', {
          status: 'RUNNING',
          progress: run.progress,
          attempt: run.attempt,
        }),
      );
      await movePost(trx, outbox, run.post_id, 'PROCESSING');
      afterCommit(() => publishOutbox(this.deps.pubsub, this.deps.cache, outbox));
      return run;
    });
  }

  /** One transaction under the run lock: verifies ownership, appends events, publishes on commit. */
  private async transition<T>(
    runId: string,
    work: (trx: Db, emit: Emit, run: PipelineRunRow, outbox: PipelineOutbox) => Promise<T>,
  ): Promise<T> {
    return transact(this.deps.db, async (trx, afterCommit) => {
      // Per attempt: transact may rerun this after a deadlock; only the committed events publish.
      const outbox = emptyOutbox();
      const run = await lockRun(trx, runId);
      if (run?.status !== 'RUNNING' || run.locked_by !== this.id) throw new RunLost();
      const emit: Emit = async (type, payload) => {
        outbox.events.push(await appendEvent(trx, run, type, payload));
      };
      const result = await work(trx, emit, run, outbox);
      afterCommit(() => publishOutbox(this.deps.pubsub, this.deps.cache, outbox));
      return result;
    });
  }

  /**
   * One claim of a run, traced as a `pipeline.run` span: a new trace (the run may start long after
   * the request, in another process) linked to the request that queued it, its steps as children.
   */
  private execute(claimed: PipelineRunRow): Promise<void> {
    return inSpan(
      'pipeline.run',
      {
        kind: SpanKind.CONSUMER,
        links: linksTo(claimed.traceparent),
        attributes: {
          'quire.pipeline.run_id': claimed.id,
          'quire.pipeline.post_id': claimed.post_id,
          'quire.pipeline.attempt': claimed.attempt,
        },
      },
      () => this.executeRun(claimed),
      ROOT_CONTEXT,
    );
  }

  private async executeRun(claimed: PipelineRunRow): Promise<void> {
    const { config } = this.deps;
    const lease = new AbortController();
    const heartbeat = setInterval(
      () => {
        extendLease(this.deps.db, claimed.id, this.id, config.PIPELINE_LEASE_MS)
          .then((held) => {
            if (!held) lease.abort();
          })
          .catch((error: unknown) =>
            this.log.warn({ err: error, runId: claimed.id }, 'lease heartbeat failed'),
          );
      },
      Math.max(100, Math.floor(config.PIPELINE_LEASE_MS / 3)),
    );
    try {
      const steps = await stepsByRuns(this.deps.db, [claimed.id]);
      const outputs: Record<string, unknown> = {};
      for (const step of steps) {
        if (step.status === 'SUCCEEDED') {
          outputs[step.name] = step.output;
          continue;
        }
        if (!(await this.atStepBoundary(claimed.id))) return;
        const finished = await this.runStep(claimed, step, steps.length, outputs, lease.signal);
        if (!finished) return;
      }
      await this.transition(claimed.id, async (trx, emit, run) => {
        await updateRun(trx, run.id, {
          status: 'SUCCEEDED',
          progress: 100,
          current_step: null,
          finished_at: sql<string>`now()`,
          locked_by: null,
          locked_until: null,
        });
        await emit('run.succeeded', { status: 'SUCCEEDED', progress: 100 });
      });
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** Honours cancellation and shutdown between steps; false when the run must stop here. */
  private async atStepBoundary(runId: string): Promise<boolean> {
    return this.transition(runId, async (trx, emit, run, outbox) => {
      if (run.cancel_requested) {
        await cancelRun(trx, run, outbox);
        return false;
      }
      if (this.stopping) {
        await this.release(trx, emit, run);
        return false;
      }
      return true;
    });
  }

  /** Back to the queue at once: another worker (or this one after restart) resumes the run. */
  private async release(trx: Db, emit: Emit, run: PipelineRunRow): Promise<void> {
    await updateRun(trx, run.id, { status: 'QUEUED', locked_by: null, locked_until: null });
    await emit('run.released', {
      status: 'QUEUED',
      progress: run.progress,
      reason: 'worker shutdown',
    });
  }

  /** A step in its own span (child of the run's); a failed or retried attempt marks it an error. */
  private runStep(
    claimed: PipelineRunRow,
    step: PipelineStepRow,
    stepCount: number,
    outputs: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<boolean> {
    return inSpan(
      `pipeline.step ${step.name}`,
      {
        attributes: {
          'quire.pipeline.run_id': claimed.id,
          'quire.pipeline.step': step.name,
          'quire.pipeline.attempt': step.attempt + 1,
        },
      },
      () => this.executeStep(claimed, step, stepCount, outputs, signal),
    );
  }

  private async executeStep(
    claimed: PipelineRunRow,
    step: PipelineStepRow,
    stepCount: number,
    outputs: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { config, db } = this.deps;
    const runProgress = (stepProgress: number) =>
      Math.min(100, Math.floor(((step.position + stepProgress / 100) / stepCount) * 100));
    const attempt = step.attempt + 1;
    if (attempt > config.PIPELINE_MAX_ATTEMPTS) {
      // Workers kept dying inside this step (each claim counts as an attempt): stop the loop.
      await this.failStep(
        claimed.id,
        step,
        attempt,
        new Error('the step did not finish on any attempt'),
      );
      return false;
    }
    await this.transition(claimed.id, async (trx, emit, run) => {
      await updateStep(trx, run.id, step.position, {
        status: 'RUNNING',
        attempt,
        progress: 0,
        error: null,
        started_at: sql<string>`now()`,
      });
      await updateRun(trx, run.id, { current_step: step.name, progress: runProgress(0) });
      await emit('step.started', {
        status: 'RUNNING',
        step: step.name,
        stepProgress: 0,
        progress: runProgress(0),
        attempt,
      });
    });
    const implementation = stepRegistry.get(step.name);
    const stepSignal = AbortSignal.any([signal, this.halt.signal]);
    const timer = this.deps.metrics?.stepDuration.startTimer({ step: step.name });
    try {
      if (!implementation) throw new Error(`no step named "${step.name}" is registered`);
      const [post] = await postsByIds(db, [claimed.post_id]);
      if (!post) throw new Error('the post no longer exists');
      const result = await implementation.run({
        db,
        post,
        outputs,
        autoPublish: claimed.auto_publish,
        signal: stepSignal,
        progress: async (percent) => {
          if (config.PIPELINE_STEP_DELAY_MS > 0)
            await sleep(config.PIPELINE_STEP_DELAY_MS, undefined, { signal: stepSignal });
          const stepProgress = Math.max(0, Math.min(100, Math.round(percent)));
          await this.transition(claimed.id, async (trx, emit, run) => {
            await updateStep(trx, run.id, step.position, { progress: stepProgress });
            await updateRun(trx, run.id, { progress: runProgress(stepProgress) });
            await emit('step.progress', {
              status: 'RUNNING',
              step: step.name,
              stepProgress,
              progress: runProgress(stepProgress),
            });
          });
        },
      });
      await this.transition(claimed.id, async (trx, emit, run, outbox) => {
        if (result.post && Object.keys(result.post).length > 0) {
          await trx
            .updateTable('posts')
            .set({ ...result.post, updated_at: sql<string>`now()` })
            .where('id', '=', run.post_id)
            .execute();
        }
        await result.apply?.(trx);
        const change = {
          postId: post.id,
          authorId: post.author_id,
          status: result.post?.status ?? post.status,
        };
        if (result.post?.status && result.post.status !== post.status)
          outbox.statusChanges.push(change);
        outbox.changedPosts.push({ id: post.id, author_id: post.author_id });
        await updateStep(trx, run.id, step.position, {
          status: 'SUCCEEDED',
          progress: 100,
          output: JSON.stringify(result.output),
          finished_at: sql<string>`now()`,
        });
        await updateRun(trx, run.id, { progress: runProgress(100) });
        await emit('step.succeeded', {
          status: 'RUNNING',
          step: step.name,
          stepProgress: 100,
          progress: runProgress(100),
        });
      });
      outputs[step.name] = result.output;
      timer?.({ outcome: 'succeeded' });
      return true;
    } catch (error) {
      timer?.({ outcome: 'failed' });
      if (error instanceof RunLost || signal.aborted) throw new RunLost();
      if (this.halt.signal.aborted) {
        // Interrupted, not failed: the attempt does not count and the step restarts later.
        await this.transition(claimed.id, async (trx, emit, run) => {
          await updateStep(trx, run.id, step.position, {
            status: 'PENDING',
            attempt: step.attempt,
            progress: 0,
          });
          await this.release(trx, emit, run);
        });
        return false;
      }
      await this.failStep(claimed.id, step, attempt, error);
      return false;
    }
  }

  /** Retries with exponential backoff until PIPELINE_MAX_ATTEMPTS, then fails the run. */
  private async failStep(
    runId: string,
    step: PipelineStepRow,
    attempt: number,
    error: unknown,
  ): Promise<void> {
    const { config } = this.deps;
    const message = error instanceof Error ? error.message : String(error);
    this.log.warn({ runId, step: step.name, attempt, err: message }, 'pipeline step failed');
    trace.getActiveSpan()?.setStatus({ code: SpanStatusCode.ERROR, message });
    await this.transition(runId, async (trx, emit, run, outbox) => {
      if (attempt < config.PIPELINE_MAX_ATTEMPTS) {
        const retryInMs = config.PIPELINE_RETRY_BASE_MS * 2 ** (attempt - 1);
        await updateStep(trx, run.id, step.position, { status: 'PENDING', error: message });
        await updateRun(trx, run.id, {
          status: 'QUEUED',
          run_after: sql<string>`now() + ${`${retryInMs} milliseconds`}::interval`,
          locked_by: null,
          locked_until: null,
        });
        await emit('step.retrying', {
          status: 'QUEUED',
          step: step.name,
          error: message,
          attempt,
          retryInMs,
          progress: run.progress,
        });
        return;
      }
      await updateStep(trx, run.id, step.position, {
        status: 'FAILED',
        error: message,
        finished_at: sql<string>`now()`,
      });
      await updateRun(trx, run.id, {
        status: 'FAILED',
        error: `${step.name}: ${message}`,
        finished_at: sql<string>`now()`,
        locked_by: null,
        locked_until: null,
      });
      await emit('step.failed', {
        status: 'FAILED',
        step: step.name,
        error: message,
        attempt,
        progress: run.progress,
      });
      await emit('run.failed', {
        status: 'FAILED',
        error: `${step.name}: ${message}`,
        progress: run.progress,
      });
      await movePost(trx, outbox, run.post_id, 'FAILED');
    });
  }
}
