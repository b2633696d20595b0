import type { Db } from '../db/database.ts';
import type { PostRow, PostUpdate } from '../db/tables.ts';

export interface StepContext {
  /** For reads outside the run's own post (e.g. the corpus); writes go through `apply`. */
  db: Db;
  /** The post as it is now, including what earlier steps of this run wrote. */
  post: PostRow;
  /** Output of earlier steps of this run, by step name. */
  outputs: Readonly<Record<string, unknown>>;
  autoPublish: boolean;
  /** Records progress (0–100) and pushes it to subscribers; also honours PIPELINE_STEP_DELAY_MS. */
  progress(percent: number): Promise<void>;
  signal: AbortSignal;
}

/**
 * What a step produced. The worker writes it in the same transaction that marks the step done,
 * so a crash before that commit leaves no trace and a rerun cannot apply it twice.
 */
export interface StepResult {
  output: Record<string, unknown>;
  post?: PostUpdate;
  apply?: (trx: Db) => Promise<void>;
}

export interface PipelineStep {
  name: string;
  description: string;
  run(context: StepContext): Promise<StepResult>;
}

export const defineStep = (step: PipelineStep): PipelineStep => step;
