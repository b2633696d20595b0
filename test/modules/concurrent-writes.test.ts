import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerStep } from '../../src/processing/registry.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { type GraphQLResponse, startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation, waitForRun } from '../helpers/pipeline.ts';

// Writes that share rows, fired at once through the server while a worker moves runs and posts.
// Every answer is a success or a coded client error, never INTERNAL_SERVER_ERROR, and the rows
// in Postgres are what exactly one winner would leave.

let app: TestApp;
let worker: PipelineWorker;
let admin: TestUser;
let author: TestUser;
let holding = false;

// Keeps its run RUNNING (and the worker writing) until the test lets go, then writes the post.
registerStep({
  name: 'test-hold',
  description: 'Reports progress until the test releases it.',
  async run({ progress, signal }) {
    while (holding && !signal.aborted) await progress(50);
    return { output: { held: true }, post: { summary: 'held' } };
  },
});

const codes = (responses: GraphQLResponse[]) =>
  responses.map((response) => response.errors?.[0]?.extensions?.code ?? 'OK');

function countCodes(responses: GraphQLResponse[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const code of codes(responses)) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

async function runsOf(postId: string) {
  return app.deps.db
    .selectFrom('pipeline_runs')
    .select(['id', 'status'])
    .where('post_id', '=', postId)
    .execute();
}

const start = (postId: string, steps: string[], token = admin.token) =>
  app.gql(startPipelineMutation, { input: { postId: globalId('Post', postId), steps } }, { token });

beforeAll(async () => {
  app = await startTestApp({
    RATE_LIMIT_MUTATIONS: '100000',
    RATE_LIMIT_START_PIPELINE: '100000',
    PIPELINE_CONCURRENCY: '5',
    PIPELINE_POLL_MS: '20',
    PIPELINE_STEP_DELAY_MS: '10',
  });
  worker = new PipelineWorker(app.deps);
  await worker.start();
  admin = await createUser(app.deps.db, 'ADMIN');
  author = await createUser(app.deps.db, 'AUTHOR');
});

afterAll(async () => {
  holding = false;
  await worker?.stop();
  await app?.close();
});

describe('concurrent writes', () => {
  it('50 startPipeline on one post: one run, the rest CONFLICT, while the worker claims it', async () => {
    // Each round is a fresh chance for the worker's claim to meet the queued starts.
    for (let round = 0; round < 4; round += 1) {
      const [post] = await createPosts(app.deps.db, [
        { authorId: author.id, body: solarArticle, status: 'DRAFT' },
      ]);
      holding = true;
      const responses = await Promise.all(
        Array.from({ length: 50 }, () => start(post!.id, ['test-hold'])),
      );
      expect(countCodes(responses)).toEqual({ OK: 1, CONFLICT: 49 });
      const runs = await runsOf(post!.id);
      expect(runs).toHaveLength(1);
      const winner = responses.find((response) => !response.errors)!;
      expect(localId(winner.data!.startPipeline.pipelineRun.id)).toBe(runs[0]!.id);
      holding = false;
      expect((await waitForRun(app.deps.db, runs[0]!.id)).status).toBe('SUCCEEDED');
    }
  });

  it('50 startPipeline on 50 posts: every one succeeds with its own run', async () => {
    const posts = await createPosts(
      app.deps.db,
      Array.from({ length: 50 }, () => ({ authorId: author.id, status: 'DRAFT' as const })),
    );
    const responses = await Promise.all(posts.map((post) => start(post.id, ['normalize'])));
    expect(countCodes(responses)).toEqual({ OK: 50 });
    const rows = await app.deps.db
      .selectFrom('pipeline_runs')
      .select(['post_id', (eb) => eb.fn.countAll<string>().as('count')])
      .where(
        'post_id',
        'in',
        posts.map((post) => post.id),
      )
      .groupBy('post_id')
      .execute();
    expect(rows).toHaveLength(50);
    expect(rows.every((row) => Number(row.count) === 1)).toBe(true);
    for (const response of responses) {
      await waitForRun(app.deps.db, localId(response.data!.startPipeline.pipelineRun.id));
    }
  });

  it('setPostTags on several posts with overlapping new tags: one row per tag, every link', async () => {
    for (let round = 0; round < 3; round += 1) {
      const posts = await createPosts(
        app.deps.db,
        Array.from({ length: 8 }, () => ({ authorId: author.id, status: 'DRAFT' as const })),
      );
      const shared = Array.from({ length: 6 }, (_, index) => `race-${round}-${index}`);
      // Every post gets the shared names (in its own order) plus one name of its own.
      const wanted = posts.map((post, index) => [
        ...(index % 2 ? [...shared].reverse() : shared),
        `own-${round}-${post.id}`,
      ]);
      const responses = await Promise.all(
        posts.map((post, index) =>
          app.gql(
            `mutation($id: ID!, $tags: [String!]!) { setPostTags(input: { postId: $id, tags: $tags }) { post { id tags { name } } } }`,
            { id: globalId('Post', post.id), tags: wanted[index] },
            { token: author.token },
          ),
        ),
      );
      expect(countCodes(responses)).toEqual({ OK: posts.length });
      const tagRows = await app.deps.db
        .selectFrom('tags')
        .select(['name', (eb) => eb.fn.countAll<string>().as('count')])
        .where('name', 'in', wanted.flat())
        .groupBy('name')
        .execute();
      expect(tagRows).toHaveLength(shared.length + posts.length);
      expect(tagRows.every((row) => Number(row.count) === 1)).toBe(true);
      const links = await app.deps.db
        .selectFrom('post_tags')
        .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
        .select(['post_tags.post_id', 'tags.name'])
        .where(
          'post_tags.post_id',
          'in',
          posts.map((post) => post.id),
        )
        .execute();
      posts.forEach((post, index) => {
        const names = links.filter((link) => link.post_id === post.id).map((link) => link.name);
        expect(names.sort()).toEqual([...wanted[index]!].sort());
      });
    }
  });

  it('updatePost and deletePost on one post while its run writes it: success, NOT_FOUND or CONFLICT', async () => {
    const update = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id title } } }`;
    const remove = `mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`;
    for (let round = 0; round < 4; round += 1) {
      const [post] = await createPosts(app.deps.db, [
        { authorId: author.id, body: solarArticle, status: 'DRAFT' },
      ]);
      const id = globalId('Post', post!.id);
      holding = true;
      const started = await start(post!.id, ['test-hold', 'normalize', 'keywords']);
      expect(started.errors).toBeUndefined();
      await waitForRun(app.deps.db, localId(started.data!.startPipeline.pipelineRun.id), [
        'RUNNING',
      ]);
      const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const updates = Array.from({ length: 20 }, (_, index) =>
        pause(index * 3).then(() =>
          app.gql(
            update,
            { input: { id, title: `Title ${round}-${index}` } },
            { token: author.token },
          ),
        ),
      );
      // The run finishes its held step (writing the post) while deletes and updates land.
      const release = pause(15).then(() => {
        holding = false;
      });
      const deletes = Array.from({ length: 5 }, (_, index) =>
        pause(20 + index * 5).then(() => app.gql(remove, { id }, { token: author.token })),
      );
      const updated = await Promise.all(updates);
      const deleted = await Promise.all(deletes);
      await release;
      expect(
        codes(updated).filter((code) => !['OK', 'NOT_FOUND', 'CONFLICT'].includes(code)),
      ).toEqual([]);
      expect(countCodes(deleted)).toEqual({ OK: 1, NOT_FOUND: 4 });
      // Deleted means gone with everything hanging off it.
      const rows = await app.deps.db
        .selectFrom('posts')
        .select('id')
        .where('id', '=', post!.id)
        .execute();
      expect(rows).toHaveLength(0);
      expect(await runsOf(post!.id)).toHaveLength(0);
    }
  });
});
