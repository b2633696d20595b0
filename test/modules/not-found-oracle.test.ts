import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertToken } from '../../src/modules/auth/auth.repository.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { startPipelineMutation } from '../helpers/pipeline.ts';

// Whatever names a row the viewer may not see must answer exactly as an id that names nothing:
// same status, same body, byte for byte. Otherwise the error wording tells drafts (and other
// people's tokens) apart from missing ids.

let app: TestApp;
let owner: TestUser;
let other: TestUser;
let hiddenPostId: string;
let hiddenRunId: string;
const missingPostId = globalId('Post', '987654321');
const missingRunId = globalId('PipelineRun', '987654321');

/** The whole HTTP answer as the client sees it. */
async function answer(
  query: string,
  variables: Record<string, unknown>,
  token: string,
  accept = 'application/graphql-response+json',
) {
  const response = await app.yoga.fetch('http://quire.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.text() };
}

/** Asserts the hidden and the missing variables get the same NOT_FOUND answer, and returns it. */
async function expectSameAnswer(
  query: string,
  hidden: Record<string, unknown>,
  missing: Record<string, unknown>,
  accept?: string,
) {
  const forHidden = await answer(query, hidden, other.token, accept);
  const forMissing = await answer(query, missing, other.token, accept);
  expect(forHidden).toEqual(forMissing);
  expect(forHidden.body).toContain('"code":"NOT_FOUND"');
  return forHidden;
}

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_MUTATIONS: '10000', RATE_LIMIT_START_PIPELINE: '10000' });
  owner = await createUser(app.deps.db, 'AUTHOR');
  other = await createUser(app.deps.db, 'AUTHOR');
  const [post] = await createPosts(app.deps.db, [{ authorId: owner.id, status: 'DRAFT' }]);
  hiddenPostId = globalId('Post', post!.id);
  const started = await app.gql(
    startPipelineMutation,
    { input: { postId: hiddenPostId, steps: ['normalize'] } },
    { token: owner.token },
  );
  hiddenRunId = started.data!.startPipeline.pipelineRun.id;
});

afterAll(async () => {
  await app?.close();
});

describe('a hidden row answers like a missing one', () => {
  it('cancelPipeline and retryPipeline on the run of a draft the viewer cannot see', async () => {
    for (const field of ['cancelPipeline', 'retryPipeline']) {
      const query = `mutation($id: ID!) { ${field}(input: { runId: $id }) { pipelineRun { id status } } }`;
      const sent = await expectSameAnswer(query, { id: hiddenRunId }, { id: missingRunId });
      expect(JSON.parse(sent.body).errors[0].message).toBe('Pipeline run not found');
    }
    // The owner still reaches the run: the rule hides it from others only.
    const cancelled = await app.gql(
      `mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { status } } }`,
      { id: hiddenRunId },
      { token: owner.token },
    );
    expect(cancelled.data?.cancelPipeline.pipelineRun.status).toBe('CANCELLED');
    // A finished run of the hidden post hides the same way (its state is no oracle either).
    await expectSameAnswer(
      `mutation($id: ID!) { cancelPipeline(input: { runId: $id }) { pipelineRun { id } } }`,
      { id: hiddenRunId },
      { id: missingRunId },
    );
  });

  it('the pipelineRun subscription over SSE', async () => {
    const query = `subscription($id: ID!) { pipelineRun(id: $id) { sequence } }`;
    await expectSameAnswer(query, { id: hiddenRunId }, { id: missingRunId }, 'text/event-stream');
  });

  it('post mutations, startPipeline and addComment on a draft the viewer cannot see', async () => {
    const operations: [string, (id: string) => Record<string, unknown>][] = [
      [
        `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id } } }`,
        (id) => ({ input: { id, title: 'Taken over' } }),
      ],
      [`mutation($id: ID!) { deletePost(input: { id: $id }) { deletedPostId } }`, (id) => ({ id })],
      [
        `mutation($id: ID!) { setPostTags(input: { postId: $id, tags: ["probe"] }) { post { id } } }`,
        (id) => ({ id }),
      ],
      [startPipelineMutation, (id) => ({ input: { postId: id, steps: ['normalize'] } })],
      [
        `mutation($id: ID!) { addComment(input: { postId: $id, body: "hello" }) { comment { id } } }`,
        (id) => ({ id }),
      ],
    ];
    for (const [query, variables] of operations) {
      await expectSameAnswer(query, variables(hiddenPostId), variables(missingPostId));
    }
  });

  it('revokeApiToken on another user’s token', async () => {
    const { id } = await insertToken(app.deps.db, owner.id, 'not yours');
    await expectSameAnswer(
      `mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { id } } }`,
      { id: globalId('ApiToken', id) },
      { id: globalId('ApiToken', '987654321') },
    );
  });
});
