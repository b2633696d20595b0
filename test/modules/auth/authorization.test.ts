import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import {
  createPosts,
  createUser,
  globalId,
  localId,
  type TestUser,
} from '../../helpers/factories.ts';

type Actor = 'anonymous' | 'viewer' | 'owner' | 'otherAuthor' | 'editor' | 'admin';
type Operation =
  | 'readDraft'
  | 'editOthersPost'
  | 'publish'
  | 'startPipeline'
  | 'manageTokens'
  | 'manageUsers';

let app: TestApp;
const users = {} as Record<Exclude<Actor, 'anonymous'>, TestUser>;

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_MUTATIONS: '10000', RATE_LIMIT_START_PIPELINE: '10000' });
  users.viewer = await createUser(app.deps.db, 'VIEWER');
  users.owner = await createUser(app.deps.db, 'AUTHOR');
  users.otherAuthor = await createUser(app.deps.db, 'AUTHOR');
  users.editor = await createUser(app.deps.db, 'EDITOR');
  users.admin = await createUser(app.deps.db, 'ADMIN');
});

afterAll(() => app?.close());

/** Every table a denied request could touch, as row counts plus the posts' contents. */
async function snapshot() {
  const counts = await Promise.all(
    (
      ['users', 'api_tokens', 'posts', 'post_tags', 'pipeline_runs', 'pipeline_events'] as const
    ).map(async (table) => {
      const { count } = await app.deps.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .executeTakeFirstOrThrow();
      return [table, count];
    }),
  );
  const posts = await app.deps.db
    .selectFrom('posts')
    .select(['id', 'title', 'status', 'updated_at'])
    .orderBy('id')
    .execute();
  const roles = await app.deps.db
    .selectFrom('users')
    .select(['id', 'role'])
    .orderBy('id')
    .execute();
  return { counts, posts, roles };
}

async function attempt(actor: Actor, operation: Operation) {
  const [draft] = await createPosts(app.deps.db, [
    { authorId: users.owner.id, status: 'DRAFT', title: 'Draft' },
  ]);
  const postId = globalId('Post', draft!.id);
  const token = actor === 'anonymous' ? undefined : users[actor].token;
  const operations: Record<Operation, [string, Record<string, unknown>]> = {
    readDraft: ['query($id: ID!) { post(id: $id) { title } }', { id: postId }],
    editOthersPost: [
      'mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }',
      { input: { id: postId, title: 'Changed' } },
    ],
    publish: [
      'mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { status } } }',
      { input: { id: postId, status: 'PUBLISHED' } },
    ],
    startPipeline: [
      'mutation($input: StartPipelineInput!) { startPipeline(input: $input) { pipelineRun { status } } }',
      { input: { postId } },
    ],
    manageTokens: [
      'mutation($user: ID) { createApiToken(input: { name: "ops", userId: $user }) { token } }',
      { user: users.owner.globalId },
    ],
    manageUsers: [
      'mutation($user: ID!) { setUserRole(input: { userId: $user, role: EDITOR }) { user { role } } }',
      { user: users.viewer.globalId },
    ],
  };
  const [query, variables] = operations[operation];
  const before = await snapshot();
  const result = await app.gql(query, variables, { token });
  const after = await snapshot();
  const allowed =
    result.errors === undefined && (operation !== 'readDraft' || result.data?.post !== null);
  return {
    allowed,
    code: result.errors?.[0]?.extensions?.code,
    unchanged: JSON.stringify(before) === JSON.stringify(after),
    result,
  };
}

// The post belongs to `owner`. "editOthersPost" is an edit of owner's post by each actor.
const matrix: Record<Operation, Actor[]> = {
  readDraft: ['owner', 'editor', 'admin'],
  editOthersPost: ['owner', 'editor', 'admin'],
  publish: ['editor', 'admin'],
  startPipeline: ['owner', 'editor', 'admin'],
  manageTokens: ['owner', 'admin'],
  manageUsers: ['admin'],
};
const actors: Actor[] = ['anonymous', 'viewer', 'owner', 'otherAuthor', 'editor', 'admin'];
const cases = Object.entries(matrix).flatMap(([operation, allowedActors]) =>
  actors.map((actor) => [operation as Operation, actor, allowedActors.includes(actor)] as const),
);

describe('roles × operations', () => {
  it.each(cases)('%s by %s: allowed=%s', async (operation, actor, expected) => {
    const outcome = await attempt(actor, operation);
    expect(outcome.allowed).toBe(expected);
    if (expected) return;
    expect(outcome.unchanged).toBe(true);
    if (operation === 'readDraft') {
      // Not even the existence of a draft leaks.
      expect(outcome.result.data).toEqual({ post: null });
      return;
    }
    const expectedCode =
      actor === 'anonymous'
        ? 'UNAUTHENTICATED'
        : actor === 'viewer' ||
            operation === 'publish' ||
            operation === 'manageTokens' ||
            operation === 'manageUsers'
          ? 'FORBIDDEN'
          : 'NOT_FOUND';
    expect(outcome.code).toBe(expectedCode);
  });

  it('rejects a revoked token with UNAUTHENTICATED at once', async () => {
    const user = await createUser(app.deps.db, 'AUTHOR');
    const created = await app.gql(
      'mutation { createApiToken(input: { name: "laptop" }) { token apiToken { id } } }',
      {},
      { token: user.token },
    );
    const { token, apiToken } = created.data!.createApiToken;
    expect((await app.gql('{ viewer { id } }', {}, { token })).data!.viewer.id).toBe(user.globalId);
    const revoked = await app.gql(
      'mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { revokedAt } } }',
      { id: apiToken.id },
      { token: user.token },
    );
    expect(revoked.data!.revokeApiToken.apiToken.revokedAt).toMatch(/Z$/);
    const after = await app.gql('{ viewer { id } }', {}, { token });
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const stored = await app.deps.db
      .selectFrom('api_tokens')
      .select('token_hash')
      .where('id', '=', localId(apiToken.id))
      .executeTakeFirstOrThrow();
    expect(stored.token_hash).not.toContain(token);
    expect(stored.token_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hides comments and runs of a hidden draft from node(id)', async () => {
    const [draft] = await createPosts(app.deps.db, [{ authorId: users.owner.id, status: 'DRAFT' }]);
    const comment = await app.deps.db
      .insertInto('comments')
      .values({ post_id: draft!.id, author_id: users.owner.id, body: 'note to self' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const id = globalId('Comment', comment.id);
    const query = 'query($id: ID!) { node(id: $id) { ... on Comment { body } } }';
    expect((await app.gql(query, { id })).data!.node).toBeNull();
    expect(
      (await app.gql(query, { id }, { token: users.otherAuthor.token })).data!.node,
    ).toBeNull();
    expect((await app.gql(query, { id }, { token: users.owner.token })).data!.node).toEqual({
      body: 'note to self',
    });
  });
});
