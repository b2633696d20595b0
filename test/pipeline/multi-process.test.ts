import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { sseSubscribe, take } from '../helpers/clients.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import {
  eventTypes,
  solarArticle,
  startPipelineMutation,
  waitForRun,
} from '../helpers/pipeline.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';
import { redisUrl, waitForRedisSubscribers } from '../helpers/services.ts';

let app: TestApp;
let author: TestUser;
const processes: ServerProcess[] = [];

async function spawn(entry: 'main' | 'worker', env: Record<string, string> = {}) {
  const started = await startProcess(entry, {
    DATABASE_URL: app.database.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: app.deps.config.REDIS_PREFIX,
    WORKER: 'off',
    PIPELINE_POLL_MS: '100',
    ...env,
  });
  processes.push(started);
  return started;
}

async function draftPost(): Promise<string> {
  const [post] = await createPosts(app.deps.db, [
    { authorId: author.id, body: solarArticle, status: 'DRAFT' },
  ]);
  return globalId('Post', post!.id);
}

async function startThrough(url: string, postId: string): Promise<string> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${author.token}` },
    body: JSON.stringify({ query: startPipelineMutation, variables: { input: { postId } } }),
  });
  const body = (await response.json()) as {
    data: { startPipeline: { pipelineRun: { id: string } } };
  };
  return body.data.startPipeline.pipelineRun.id;
}

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_START_PIPELINE: '1000' });
  author = await createUser(app.deps.db, 'AUTHOR');
});

// A test that fails or times out must not leave a worker claiming the next test's runs.
afterEach(async () => {
  await Promise.all(processes.splice(0).map((child) => child.stop('SIGKILL')));
});

afterAll(async () => {
  await app?.close();
});

// Each child process compiles the sources with tsx on start: seconds each on a loaded CI machine.
describe('across processes', { timeout: 90_000 }, () => {
  it('a subscriber on instance A sees a run started through instance B and run by a separate worker', async () => {
    const [instanceA, instanceB] = await Promise.all([spawn('main'), spawn('main')]);
    const postId = await draftPost();
    // Subscribe on A to B's post status changes first, then start the run through B.
    const statusStream = take(
      sseSubscribe(
        instanceA.url,
        'subscription($author: ID) { postStatusChanged(authorId: $author) { status post { id } } }',
        { author: author.globalId },
        { token: author.token },
      ),
      3,
    );
    await waitForRedisSubscribers([`${app.deps.config.REDIS_PREFIX}postStatusChanged`]);
    const runId = await startThrough(instanceB.url, postId);
    const runStream = take(
      sseSubscribe(
        instanceA.url,
        'subscription($id: ID!) { pipelineRun(id: $id) { sequence type } }',
        { id: runId },
        { token: author.token },
      ),
      10_000,
    );
    // The worker starts only once A listens to the run: every event after run.queued reaches A
    // live through Redis, none from A's replay of the table.
    await waitForRedisSubscribers([`${app.deps.config.REDIS_PREFIX}pipelineRun:${localId(runId)}`]);
    const worker = await spawn('worker', { PIPELINE_STEP_DELAY_MS: '10' });
    const events = await runStream;
    const types = events.map((result) => result.data!.pipelineRun.type);
    expect(types[0]).toBe('run.queued');
    expect(types.at(-1)).toBe('run.succeeded');
    expect(events.map((result) => result.data!.pipelineRun.sequence)).toEqual(
      types.map((_, index) => index + 1),
    );
    const statuses = (await statusStream).map((result) => result.data!.postStatusChanged);
    expect(statuses.map((change) => change.status)).toEqual(['QUEUED', 'PROCESSING', 'REVIEW']);
    expect(statuses.every((change) => change.post.id === postId)).toBe(true);
    await Promise.all([instanceA.stop(), instanceB.stop(), worker.stop()]);
  });

  it('a run whose worker is SIGKILLed mid-step is finished by another worker, each step applied once', async () => {
    const lease = { PIPELINE_LEASE_MS: '1200', PIPELINE_STEP_DELAY_MS: '250' };
    const doomed = await spawn('worker', lease);
    const postId = await draftPost();
    const result = await app.gql(
      startPipelineMutation,
      { input: { postId } },
      { token: author.token },
    );
    const runId = localId(result.data!.startPipeline.pipelineRun.id);
    // Kill it inside a step, after at least one step has committed.
    for (;;) {
      const steps = await app.deps.db
        .selectFrom('pipeline_steps')
        .select(['status'])
        .where('run_id', '=', runId)
        .execute();
      const statuses = steps.map((step) => step.status);
      if (statuses.includes('SUCCEEDED') && statuses.includes('RUNNING')) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await doomed.stop('SIGKILL');
    const interrupted = await app.deps.db
      .selectFrom('pipeline_steps')
      .select(['name', 'status', 'attempt'])
      .where('run_id', '=', runId)
      .where('status', '=', 'RUNNING')
      .executeTakeFirstOrThrow();

    const rescuer = new PipelineWorker({
      ...app.deps,
      config: { ...app.deps.config, PIPELINE_LEASE_MS: 1200, PIPELINE_POLL_MS: 100 },
    });
    await rescuer.start();
    try {
      const run = await waitForRun(app.deps.db, runId);
      expect(run.status).toBe('SUCCEEDED');
      expect(run.attempt).toBe(2);
    } finally {
      await rescuer.stop();
    }
    const types = await eventTypes(app.deps.db, runId);
    for (const step of ['normalize', 'keywords', 'summarize', 'seo', 'tag', 'review']) {
      expect(types.filter((type) => type === `step.succeeded:${step}`)).toHaveLength(1);
    }
    const steps = await app.deps.db
      .selectFrom('pipeline_steps')
      .select(['name', 'status', 'attempt', 'output'])
      .where('run_id', '=', runId)
      .orderBy('position')
      .execute();
    expect(steps.every((step) => step.status === 'SUCCEEDED' && step.output !== null)).toBe(true);
    expect(steps.find((step) => step.name === interrupted.name)?.attempt).toBe(
      interrupted.attempt + 1,
    );
    // The post holds exactly what the committed step outputs say, whichever worker wrote them.
    const output = Object.fromEntries(steps.map((step) => [step.name, step.output])) as Record<
      string,
      Record<string, any>
    >;
    const post = await app.deps.db
      .selectFrom('posts')
      .select(['status', 'summary', 'keywords', 'word_count', 'seo_score', 'meta_description'])
      .where('id', '=', localId(postId))
      .executeTakeFirstOrThrow();
    expect(post).toEqual({
      status: 'REVIEW',
      summary: output.summarize!.summary,
      keywords: output.keywords!.keywords.map((keyword: { term: string }) => keyword.term),
      word_count: output.normalize!.wordCount,
      seo_score: output.seo!.score,
      meta_description: output.seo!.metaDescription,
    });
    const tagNames = await app.deps.db
      .selectFrom('post_tags')
      .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
      .select('tags.name')
      .where('post_tags.post_id', '=', localId(postId))
      .orderBy('tags.name')
      .execute();
    expect(tagNames.map((tag) => tag.name)).toEqual([...output.tag!.tags].sort());
  });
});

describe('concurrency limit', () => {
  it('never runs more than PIPELINE_CONCURRENCY=5 of 20 queued runs at once', async () => {
    const runIds: string[] = [];
    for (let index = 0; index < 20; index += 1) {
      const result = await app.gql(
        startPipelineMutation,
        { input: { postId: await draftPost() } },
        { token: author.token },
      );
      runIds.push(localId(result.data!.startPipeline.pipelineRun.id));
    }
    const worker = new PipelineWorker({
      ...app.deps,
      config: {
        ...app.deps.config,
        PIPELINE_CONCURRENCY: 5,
        PIPELINE_STEP_DELAY_MS: 5,
        PIPELINE_POLL_MS: 50,
      },
    });
    let sampledMax = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { count } = await app.deps.db
          .selectFrom('pipeline_runs')
          .select((eb) => eb.fn.countAll<string>().as('count'))
          .where('id', 'in', runIds)
          .where('status', '=', 'RUNNING')
          .executeTakeFirstOrThrow();
        sampledMax = Math.max(sampledMax, Number(count));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await worker.start();
    try {
      for (const runId of runIds)
        expect((await waitForRun(app.deps.db, runId, undefined, 60_000)).status).toBe('SUCCEEDED');
    } finally {
      sampling = false;
      await sampler;
      await worker.stop();
    }
    // Exact overlap from the event log: each run is busy from run.started to run.succeeded.
    const marks = await app.deps.db
      .selectFrom('pipeline_events')
      .select(['type', 'created_at'])
      .where('run_id', 'in', runIds)
      .where('type', 'in', ['run.started', 'run.succeeded'])
      .execute();
    const timeline = marks
      .map((mark) => ({ at: mark.created_at, delta: mark.type === 'run.started' ? 1 : -1 }))
      .sort((a, b) => (a.at === b.at ? a.delta - b.delta : a.at < b.at ? -1 : 1));
    let running = 0;
    let peak = 0;
    for (const mark of timeline) {
      running += mark.delta;
      peak = Math.max(peak, running);
    }
    expect(peak).toBe(5);
    expect(sampledMax).toBeLessThanOrEqual(5);
    expect(worker.maxConcurrent).toBe(5);
  });
});
