import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { compareFolded } from '../../helpers/fold.ts';
import { redisUrl } from '../../helpers/services.ts';

/**
 * The folds (post(id:) with its comment page, node(id:) of a User with its posts page) against
 * documents built to split them from the unfolded path: one parsed document whose `node` is a
 * Post on one request and a User on the next, the same post aliased with different pages, the
 * same arguments in another order, a comment's post asking for its own page, invalid pages, and
 * two instances sharing the entity and response caches across writes. Every answer must be the
 * unfolded one (QUERY_FOLDING=off), for every kind of viewer.
 */
let folded: TestApp;
let unfolded: TestApp;
/** Two instances over one Redis (entity and response cache): what one stores, the other reads. */
let cachedA: TestApp;
let cachedB: TestApp;
let writer: TestUser;
let reader: TestUser;
let editor: TestUser;
let ids: { live: string; draft: string };

beforeAll(async () => {
  folded = await startTestApp({ CACHE: 'off' });
  unfolded = await startTestApp({ CACHE: 'off', QUERY_FOLDING: 'off' }, folded);
  cachedA = await startTestApp({ REDIS_URL: redisUrl, CACHE: 'on' }, folded);
  cachedB = await startTestApp({ REDIS_URL: redisUrl, CACHE: 'on' }, folded);
  const { db } = folded.deps;
  writer = await createUser(db, 'AUTHOR', 'Adversarial Writer');
  reader = await createUser(db, 'VIEWER', 'Adversarial Reader');
  editor = await createUser(db, 'EDITOR', 'Adversarial Editor');
  const [live, draft] = await createPosts(db, [
    { authorId: writer.id, title: 'Live' },
    { authorId: writer.id, title: 'Draft', status: 'DRAFT' },
  ]);
  ids = { live: globalId('Post', live!.id), draft: globalId('Post', draft!.id) };
  await db
    .insertInto('comments')
    .values([
      ...Array.from({ length: 8 }, (_, index) => ({
        post_id: live!.id,
        author_id: index % 2 ? reader.id : writer.id,
        body: `Comment ${index}`,
      })),
      { post_id: draft!.id, author_id: writer.id, body: 'On the draft' },
    ])
    .execute();
});

afterAll(async () => {
  await cachedB?.close();
  await cachedA?.close();
  await unfolded?.close();
  await folded?.close();
});

const page = `edges { cursor node { id body createdAt author { id name email role createdAt }
  post { id title status } } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  totalCount`;

const viewers = () => [undefined, reader.token, writer.token, editor.token];

/** Folded, and over both cached instances (a miss, then the other's hit), as unfolded answers. */
const compare = (query: string, variables: Record<string, unknown>, token?: string) =>
  compareFolded({ unfolded, folded, cached: [cachedA, cachedB, cachedA] }, query, variables, token);

describe('folds against adversarial documents', () => {
  it('answers one parsed document whose node is a Post, then a User, then a draft', async () => {
    const query = `query($id: ID!, $n: Int) { node(id: $id) { id
      ... on User { name posts(first: $n) { edges { node { title author { name
        posts(first: $n) { edges { node { id title } } } } } } } }
      ... on Post { title comments(first: $n) { ${page} } } } }`;
    for (const token of viewers()) {
      for (const id of [ids.live, writer.globalId, ids.draft, ids.live]) {
        for (const n of [3, 1]) await compare(query, { id, n }, token);
      }
    }
  });

  it('answers the same post under aliases with different pages, and arguments in any order', async () => {
    const aliases = `query($a: ID!, $b: ID!) {
      a: post(id: $a) { title comments(first: 2) { ${page} } }
      b: post(id: $a) { title comments(first: 3) { ${page} } }
      c: post(id: $b) { comments(first: 2) { ${page} } }
      d: node(id: $a) { ... on Post { body comments(first: 2) { ${page} } } } }`;
    for (const token of viewers()) {
      const { result } = await compare(aliases, { a: ids.live, b: ids.draft }, token);
      // Each alias its own page, though both fold the same post.
      expect(
        [result.data?.a, result.data?.b, result.data?.d].map((post) => post.comments.edges.length),
      ).toEqual([2, 3, 2]);
      await compare(aliases, { a: ids.draft, b: ids.live }, token);
    }
    const order = `query($id: ID!, $c: String) { post(id: $id) {
      x: comments(after: $c, first: 2) { ${page} } y: comments(first: 2, after: $c) {
        edges { node { id } } } } }`;
    const { result, folded: statements } = await compare(order, { id: ids.live, c: null });
    // One page for both aliases, in the post's statement, and its count.
    expect(statements).toBe(2);
    await compare(order, { id: ids.live, c: result.data?.post.x.pageInfo.endCursor });
    const nested = `query($id: ID!) { post(id: $id) { comments(first: 3) { edges { node {
      post { title comments(first: 1) { ${page} } } } } } } }`;
    for (const token of viewers()) await compare(nested, { id: ids.live }, token);
  });

  it('refuses invalid pages with the unfolded errors', async () => {
    const query = `query($id: ID!, $u: ID!, $f: Int, $l: Int, $a: String, $b: String) {
      post(id: $id) { comments(first: $f, last: $l, after: $a, before: $b) { ${page} } }
      u: node(id: $u) { ... on User { posts(first: $f, last: $l, after: $a, before: $b) {
        edges { node { id } } } } } }`;
    for (const variables of [
      { f: -1 },
      { f: 10_000 },
      { a: 'not-a-cursor' },
      { f: 1, l: 1 },
      { b: 'eyJ4IjoxfQ' },
      { l: -3 },
      { f: 0 },
    ]) {
      const { result } = await compare(query, { id: ids.live, u: writer.globalId, ...variables });
      if (!('f' in variables && variables.f === 0)) {
        expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
    }
  });

  it('keeps N aliases of both folds to one statement each, and both caches fresh across writes', async () => {
    const many = `query($a: ID!, $b: ID!, $u: ID!, $r: ID!) { ${Array.from(
      { length: 15 },
      (_, index) => `p${index}: post(id: ${index % 2 ? '$a' : '$b'}) {
        title comments(first: 2) { ${page} } }
      u${index}: node(id: ${index % 2 ? '$u' : '$r'}) { ... on User {
        posts(first: 2) { edges { node { title } } } } }`,
    ).join(' ')} }`;
    const variables = { a: ids.live, b: ids.draft, u: writer.globalId, r: reader.globalId };
    const counted = await compare(many, variables);
    // Posts with their comment pages, the pages' count, users with their post pages.
    expect([counted.folded, counted.unfolded]).toEqual([3, 5]);
    const profile = `query($id: ID!, $u: ID!) {
      post(id: $id) { title body status comments(first: 3) { ${page} } }
      node(id: $u) { ... on User { name posts(first: 3) {
        edges { node { id title body status } } totalCount } } } }`;
    for (let round = 0; round < 3; round++) {
      for (const token of viewers())
        await compare(profile, { id: ids.live, u: writer.globalId }, token);
      const comment = await cachedB.gql(
        `mutation($p: ID!) { addComment(input: { postId: $p, body: "New ${round}" }) {
          comment { id } } }`,
        { p: ids.live },
        { token: reader.token },
      );
      expect(comment.errors).toBeUndefined();
      const update = await cachedA.gql(
        `mutation($p: ID!) { updatePost(input: { id: $p, title: "Live ${round}",
          body: "Body ${round}" }) { post { id } } }`,
        { p: ids.live },
        { token: writer.token },
      );
      expect(update.errors).toBeUndefined();
    }
    for (const token of viewers()) {
      const { result } = await compare(profile, { id: ids.live, u: writer.globalId }, token);
      expect(result.data?.post.title).toBe('Live 2');
      expect(result.data?.post.comments.edges[0].node.body).toBe('New 2');
    }
  });
});
