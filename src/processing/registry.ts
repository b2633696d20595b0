import type { PipelineStep } from './step.ts';
import { keywordsStep } from './steps/keywords.ts';
import { normalizeStep } from './steps/normalize.ts';
import { reviewStep } from './steps/review.ts';
import { seoStep } from './steps/seo.ts';
import { summarizeStep } from './steps/summarize.ts';
import { tagStep } from './steps/tag.ts';

const builtInSteps = [normalizeStep, keywordsStep, summarizeStep, seoStep, tagStep, reviewStep];

/** Every step by name; a built-in step is a file in steps/ plus a line above. */
export const stepRegistry = new Map<string, PipelineStep>(
  builtInSteps.map((step) => [step.name, step]),
);

/** The full pipeline, in order: what `startPipeline` runs when no steps are named. */
export const defaultSteps: readonly string[] = builtInSteps.map((step) => step.name);

/**
 * Adds a step (an LLM call, a webhook…) before the server or worker starts. API instances and
 * workers must register the same steps.
 */
export function registerStep(step: PipelineStep): void {
  if (stepRegistry.has(step.name))
    throw new Error(`a step named "${step.name}" is already registered`);
  stepRegistry.set(step.name, step);
}
