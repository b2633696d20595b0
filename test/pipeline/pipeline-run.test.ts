import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerStep } from '../../src/processing/registry.ts';
import {
  countWords,
  normalizeMarkdown,
  readingMinutes,
} from '../../src/processing/text/normalize.ts';
import { fleschReadingEase } from '../../src/processing/text/readability.ts';
import { metaDescription, seoScore } from '../../src/processing/text/seo.ts';
import { summarize } from '../../src/processing/text/summarize.ts';
import { splitSentences } from '../../src/processing/text/tokenize.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import {
  eventTypes,
  solarArticle,
  startPipelineMutation,
  waitForRun,
} from '../helpers/pipeline.ts';

let app: TestApp;
let worker: PipelineWorker;
let author: TestUser;
let editor: TestUser;
let flakyFailures = 0;

registerStep({
  name: 'test-flaky',
  description: 'Fails while the test says so.',
  async run({ progress }) {
    await progress(50);
    if (flakyFailures > 0) {
      flakyFailures -= 1;
      throw new Error('flaky dependency unavailable');
    }
    return { output: { ok: true } };
  },
});

async function start(postId: string, input: Record<string, unknown> = {}, token = author.token) {
  const result = await app.gql(
    startPipelineMutation,
    { input: { postId: globalId('Post', postId), ...input } },
    { token },
  );
  return result;
}

beforeAll(async () => {
  app = await startTestApp({
    PIPELINE_CONCURRENCY: '5',
    PIPELINE_MAX_ATTEMPTS: '2',
    PIPELINE_RETRY_BASE_MS: '50',
    PIPELINE_POLL_MS: '50',
    // Slow enough that a cancel lands mid-run, fast enough for a unit test.
    PIPELINE_STEP_DELAY_MS: '25',
  });
  worker = new PipelineWorker(app.deps);
  await worker.start();
  author = await createUser(app.deps.db, 'AUTHOR');
  editor = await createUser(app.deps.db, 'EDITOR');
  // A published corpus on other topics, for TF-IDF.
  await createPosts(app.deps.db, [
    {
      authorId: editor.id,
      body: 'City buses and trains move people. Trains are fast and buses are cheap.',
    },
    {
      authorId: editor.id,
      body: 'Gardens in the city grow food. People plant beans and tomatoes on roofs.',
    },
    {
      authorId: editor.id,
      body: 'Electricity prices rose this year. Power companies blame the cost of gas.',
    },
  ]);
});

afterAll(async () => {
  await worker?.stop();
  await app?.close();
});

describe('pipeline run', () => {
  it('runs every step over a post and writes results that match its text', async () => {
    const [post] = await createPosts(app.deps.db, [
      {
        authorId: author.id,
        title: 'Solar panels on city roofs',
        body: solarArticle,
        status: 'DRAFT',
      },
    ]);
    const started = await start(post!.id);
    expect(started.errors).toBeUndefined();
    expect(started.data!.startPipeline.pipelineRun.status).toBe('QUEUED');
    const run = await waitForRun(app.deps.db, localId(started.data!.startPipeline.pipelineRun.id));
    expect(run.status).toBe('SUCCEEDED');
    expect(run.progress).toBe(100);

    const result = await app.gql(
      `query($id: ID!) { post(id: $id) { status summary keywords wordCount readingMinutes readabilityScore seoScore metaDescription tags { name }
        latestRun { status steps { name status progress output } events(first: 100) { totalCount edges { node { sequence type } } } } } }`,
      { id: globalId('Post', post!.id) },
      { token: author.token },
    );
    expect(result.errors).toBeUndefined();
    const read = result.data!.post;
    const text = normalizeMarkdown(solarArticle);
    expect(read.status).toBe('REVIEW');
    expect(read.wordCount).toBe(countWords(text));
    expect(read.readingMinutes).toBe(readingMinutes(countWords(text)));
    expect(read.readabilityScore).toBeCloseTo(fleschReadingEase(text), 1);
    expect(read.keywords[0]).toBe('solar');
    // Extractive: made of the text's own sentences, about its topic.
    expect(read.summary).toBe(summarize(text, 3));
    const sentences = splitSentences(text);
    expect(
      sentences.filter((sentence) => read.summary.includes(sentence)).length,
    ).toBeGreaterThanOrEqual(2);
    expect(read.summary.toLowerCase()).toContain('solar');
    expect(read.tags.map((tag: { name: string }) => tag.name)).toContain('solar');
    expect(read.metaDescription).toBe(metaDescription(read.summary));
    const seo = seoScore({
      title: 'Solar panels on city roofs',
      text,
      keywords: read.keywords,
      metaDescription: read.metaDescription,
      readingEase: fleschReadingEase(text),
    });
    expect(read.seoScore).toBe(seo.score);
    const seoOutput = read.latestRun.steps.find((step: { name: string }) => step.name === 'seo');
    expect(seoOutput.output).toMatchObject({
      slug: 'solar-panels-on-city-roofs',
      score: seo.score,
    });
    expect(
      read.latestRun.steps.map((step: { name: string; status: string }) => [
        step.name,
        step.status,
      ]),
    ).toEqual(
      ['normalize', 'keywords', 'summarize', 'seo', 'tag', 'review'].map((name) => [
        name,
        'SUCCEEDED',
      ]),
    );
    const events = read.latestRun.events;
    expect(events.edges.map((edge: { node: { sequence: number } }) => edge.node.sequence)).toEqual(
      Array.from({ length: events.totalCount }, (_, index) => index + 1),
    );
    // Each step reports progress several times between its start and its success.
    const types = await eventTypes(app.deps.db, run.id);
    for (const step of ['normalize', 'keywords', 'summarize', 'seo', 'tag', 'review']) {
      expect(
        types.filter((type) => type === `step.progress:${step}`).length,
      ).toBeGreaterThanOrEqual(2);
    }
    expect(types.at(-1)).toBe('run.succeeded');
  });

  it('stores the normalised text once; an edited body clears it; TF-IDF reads the stored text', async () => {
    const plainTextOf = async (id: string) =>
      (
        await app.deps.db
          .selectFrom('posts')
          .select('plain_text')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).plain_text;
    // A published post whose stored text says "aardvark" while its body does not: if the keywords
    // step read bodies, "aardvark" would be unseen in the corpus and tie with "zebra" (and win
    // the tie alphabetically); read from the stored text it is common, so "zebra" ranks first.
    const [corpusPost] = await createPosts(app.deps.db, [
      { authorId: editor.id, body: 'Nothing in common here.' },
    ]);
    await app.deps.db
      .updateTable('posts')
      .set({ plain_text: 'Aardvark notes.' })
      .where('id', '=', corpusPost!.id)
      .execute();

    const body =
      '# Zebra aardvark\n\nAardvark and zebra.\n\n    indented code block\n\n| a | b |\n|---|---|';
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, title: 'Zebra aardvark', body, status: 'DRAFT' },
    ]);
    const started = await start(post!.id);
    expect(started.errors).toBeUndefined();
    const run = await waitForRun(app.deps.db, localId(started.data!.startPipeline.pipelineRun.id));
    expect(run.status).toBe('SUCCEEDED');

    expect(await plainTextOf(post!.id)).toBe('Zebra aardvark\n\nAardvark and zebra.\n\na b');
    const { keywords } = await app.deps.db
      .selectFrom('posts')
      .select('keywords')
      .where('id', '=', post!.id)
      .executeTakeFirstOrThrow();
    expect(keywords.slice(0, 2)).toEqual(['zebra', 'aardvark']);

    const edited = await app.gql(
      'mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id } } }',
      { input: { id: globalId('Post', post!.id), body: 'A new body.' } },
      { token: author.token },
    );
    expect(edited.errors).toBeUndefined();
    expect(await plainTextOf(post!.id)).toBeNull();
    // A write that leaves the body alone keeps the stored text.
    await app.deps.db
      .updateTable('posts')
      .set({ plain_text: 'kept' })
      .where('id', '=', post!.id)
      .execute();
    await app.deps.db
      .updateTable('posts')
      .set({ title: 'Renamed' })
      .where('id', '=', post!.id)
      .execute();
    expect(await plainTextOf(post!.id)).toBe('kept');
  });

  it('publishes at the end when an editor asks for autoPublish; authors may not', async () => {
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, body: solarArticle, status: 'DRAFT' },
    ]);
    const denied = await start(post!.id, { autoPublish: true });
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const started = await start(post!.id, { autoPublish: true }, editor.token);
    await waitForRun(app.deps.db, localId(started.data!.startPipeline.pipelineRun.id));
    const row = await app.deps.db
      .selectFrom('posts')
      .select(['status', 'published_at'])
      .where('id', '=', post!.id)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('PUBLISHED');
    expect(row.published_at).not.toBeNull();
  });

  it('allows one active run per post (CONFLICT) and validates step names', async () => {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id, status: 'DRAFT' }]);
    const unknown = await start(post!.id, { steps: ['normalize', 'teleport'] });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    await worker.stop();
    try {
      const first = await start(post!.id);
      expect(first.errors).toBeUndefined();
      const second = await start(post!.id);
      expect(second.errors?.[0]?.extensions?.code).toBe('CONFLICT');
      const runs = await app.deps.db
        .selectFrom('pipeline_runs')
        .select('id')
        .where('post_id', '=', post!.id)
        .execute();
      expect(runs).toHaveLength(1);
      // Cancelling a queued run ends it at once.
      const cancelled = await app.gql(
        `mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status } } }`,
        { id: first.data!.startPipeline.pipelineRun.id },
        { token: author.token },
      );
      expect(cancelled.data!.cancelPipeline.pipelineRun.status).toBe('CANCELLED');
    } finally {
      worker = new PipelineWorker(app.deps);
      await worker.start();
    }
  });

  it('retries a failing step with backoff, then fails the run; retryPipeline resumes from the failed step', async () => {
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, body: solarArticle, status: 'DRAFT' },
    ]);
    flakyFailures = 2; // PIPELINE_MAX_ATTEMPTS=2: both attempts fail.
    const started = await start(post!.id, { steps: ['normalize', 'test-flaky', 'summarize'] });
    const runId = localId(started.data!.startPipeline.pipelineRun.id);
    const failed = await waitForRun(app.deps.db, runId);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toBe('test-flaky: flaky dependency unavailable');
    expect(await eventTypes(app.deps.db, runId)).toEqual(
      expect.arrayContaining(['step.retrying:test-flaky', 'step.failed:test-flaky', 'run.failed']),
    );
    const postRow = await app.deps.db
      .selectFrom('posts')
      .select('status')
      .where('id', '=', post!.id)
      .executeTakeFirstOrThrow();
    expect(postRow.status).toBe('FAILED');

    const retried = await app.gql(
      `mutation($id: ID!) { retryPipeline(input: { runId: $id }) { pipelineRun { status } } }`,
      { id: started.data!.startPipeline.pipelineRun.id },
      { token: author.token },
    );
    expect(retried.data!.retryPipeline.pipelineRun.status).toBe('QUEUED');
    const done = await waitForRun(app.deps.db, runId);
    expect(done.status).toBe('SUCCEEDED');
    const types = await eventTypes(app.deps.db, runId);
    // normalize ran once (before the failure) and was not repeated after the retry.
    expect(types.filter((type) => type === 'step.succeeded:normalize')).toHaveLength(1);
    expect(types.filter((type) => type === 'step.succeeded:test-flaky')).toHaveLength(1);
    expect(types.indexOf('run.retried')).toBeLessThan(types.indexOf('step.succeeded:test-flaky'));
  });

  it('cancels a running run at the next step boundary', async () => {
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, body: solarArticle, status: 'DRAFT' },
    ]);
    const started = await start(post!.id);
    const runId = localId(started.data!.startPipeline.pipelineRun.id);
    await waitForRun(app.deps.db, runId, ['RUNNING']);
    const requested = await app.gql(
      `mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status cancelRequested } } }`,
      { id: started.data!.startPipeline.pipelineRun.id },
      { token: author.token },
    );
    expect(requested.errors).toBeUndefined();
    expect(requested.data!.cancelPipeline.pipelineRun).toEqual({
      status: 'RUNNING',
      cancelRequested: true,
    });
    const run = await waitForRun(app.deps.db, runId);
    expect(run.status).toBe('CANCELLED');
    const steps = await app.deps.db
      .selectFrom('pipeline_steps')
      .select(['status'])
      .where('run_id', '=', runId)
      .orderBy('position')
      .execute();
    const statuses = steps.map((step) => step.status);
    // Every step either finished before the boundary or was cancelled; none left half-done.
    expect(statuses.every((status) => status === 'SUCCEEDED' || status === 'CANCELLED')).toBe(true);
    expect(statuses).toContain('CANCELLED');
    // The step running when the cancel arrived finished; no step started after it.
    const types = await eventTypes(app.deps.db, runId);
    const afterRequest = types.slice(types.indexOf('run.cancel_requested') + 1);
    expect(afterRequest.some((type) => type.startsWith('step.started'))).toBe(false);
    const finishing = afterRequest.filter((type) => type.startsWith('step.'));
    expect(new Set(finishing.map((type) => type.split(':')[1])).size).toBeLessThanOrEqual(1);
    if (finishing.length > 0) expect(finishing.at(-1)).toMatch(/^step\.succeeded:/);
    expect(afterRequest.at(-1)).toBe('run.cancelled');
  });

  it('releases a running run to the queue on worker shutdown; another worker resumes it', async () => {
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, body: solarArticle, status: 'DRAFT' },
    ]);
    await worker.stop();
    const leaving = new PipelineWorker(app.deps);
    await leaving.start();
    const started = await start(post!.id);
    const runId = localId(started.data!.startPipeline.pipelineRun.id);
    await waitForRun(app.deps.db, runId, ['RUNNING']);
    await leaving.stop();
    const released = await app.deps.db
      .selectFrom('pipeline_runs')
      .select(['status', 'locked_by'])
      .where('id', '=', runId)
      .executeTakeFirstOrThrow();
    expect(released).toEqual({ status: 'QUEUED', locked_by: null });
    worker = new PipelineWorker(app.deps);
    await worker.start();
    expect((await waitForRun(app.deps.db, runId)).status).toBe('SUCCEEDED');
    const types = await eventTypes(app.deps.db, runId);
    expect(types).toContain('run.released');
    for (const step of ['normalize', 'keywords', 'summarize', 'seo', 'tag', 'review']) {
      expect(types.filter((type) => type === `step.succeeded:${step}`)).toHaveLength(1);
    }
  });
});
