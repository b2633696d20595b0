import type { Db } from '../../src/db/database.ts';
import type { PipelineRunRow, RunStatus } from '../../src/db/tables.ts';
import type { TestApp } from './app.ts';
import { createPosts, globalId, type TestUser } from './factories.ts';

/** Waits (bounded) until the run reaches one of `statuses`. */
export async function waitForRun(
  db: Db,
  runId: string,
  statuses: RunStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'],
  timeoutMs = 20_000,
): Promise<PipelineRunRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await db
      .selectFrom('pipeline_runs')
      .selectAll()
      .where('id', '=', runId)
      .executeTakeFirstOrThrow();
    if (statuses.includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} stayed ${run.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function eventTypes(db: Db, runId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('pipeline_events')
    .select(['type', 'payload'])
    .where('run_id', '=', runId)
    .orderBy('seq')
    .execute();
  return rows.map((row) => (row.payload.step ? `${row.type}:${row.payload.step}` : row.type));
}

export const startPipelineMutation = /* GraphQL */ `
  mutation Start($input: StartPipelineInput!) {
    startPipeline(input: $input) { pipelineRun { id status } }
  }
`;

export const solarArticle = `# Solar panels on city roofs

Solar panels turn sunlight into electricity without noise or fuel. A solar roof on a city
building can cover much of the power the building needs during the day.

## Why cities need solar

Cities use a lot of electricity. Rooftop solar panels produce power right where people use it,
so less energy is lost on long power lines. Solar panels also keep roofs cooler in summer.

## What it costs

The price of solar panels fell by more than half in ten years. Most city owners earn back the
cost of a solar roof in seven to ten years. After that, the electricity is almost free.

Batteries store solar power for the evening. With a battery, a building can use its own solar
electricity after sunset.`;

/** A draft by `author` with a queued run over it; returns the run's global id. */
export async function queueRun(app: TestApp, author: TestUser): Promise<string> {
  const [post] = await createPosts(app.deps.db, [
    { authorId: author.id, body: solarArticle, status: 'DRAFT' },
  ]);
  const result = await app.gql(
    startPipelineMutation,
    { input: { postId: globalId('Post', post!.id) } },
    { token: author.token },
  );
  return result.data!.startPipeline.pipelineRun.id;
}
