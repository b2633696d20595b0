import { type GraphQLField, type GraphQLObjectType, getNamedType, isLeafType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../../src/schema.ts';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { compareFolded } from '../../helpers/fold.ts';

/**
 * `post(id:)` fetches the comment page its selection asks for in the post's own statement
 * (src/modules/comment/comment.pages.ts), `node(id:)` of a User the page of its posts
 * (src/modules/post/post.schema.ts). Their answers must be those of the unfolded path
 * (QUERY_FOLDING=off: the row, then the page) for every document, viewer and cache layer, and
 * their statements must not grow with aliases or rows.
 */
let folded: TestApp;
let unfolded: TestApp;
/** Folded, with the entity cache on (Redis): posts it holds are not fetched again. */
let cached: TestApp;
let writer: TestUser;
let reader: TestUser;
let ids: { long: string; short: string; draft: string; empty: string };

beforeAll(async () => {
  folded = await startTestApp({ CACHE: 'off' });
  unfolded = await startTestApp({ CACHE: 'off', QUERY_FOLDING: 'off' }, folded);
  cached = await startTestApp({ RESPONSE_CACHE: 'off' }, folded);
  const { db } = folded.deps;
  writer = await createUser(db, 'AUTHOR', 'Fold Writer');
  reader = await createUser(db, 'VIEWER', 'Fold "Reader" \\ ü');
  const [long, short, draft, empty] = await createPosts(db, [
    { authorId: writer.id, title: 'Long thread' },
    { authorId: writer.id, title: 'Short thread' },
    { authorId: writer.id, title: 'Draft thread', status: 'DRAFT' },
    { authorId: writer.id, title: 'No thread' },
  ]);
  ids = {
    long: globalId('Post', long!.id),
    short: globalId('Post', short!.id),
    draft: globalId('Post', draft!.id),
    empty: globalId('Post', empty!.id),
  };
  await db
    .updateTable('posts')
    .set({
      readability_score: 61.3,
      seo_score: 77,
      word_count: 1234,
      reading_minutes: 7,
      keywords: ['graph', 'say "hi"'],
      summary: 'A summary, ü',
    })
    .where('id', '=', long!.id)
    .execute();
  const at = (minute: number) => new Date(Date.UTC(2030, 0, 1, 0, minute, 0, 123)).toISOString();
  await db
    .insertInto('comments')
    .values([
      // Every fourth shares its time with the one before: ties are ordered by id.
      ...Array.from({ length: 25 }, (_, index) => ({
        post_id: long!.id,
        author_id: index % 2 ? reader.id : writer.id,
        body: `Long ${index}: "quoted", back\\slash, new\nline, ü 🎉`,
        created_at: at(index - (index % 4 === 3 ? 1 : 0)),
      })),
      ...[0, 1, 2].map((index) => ({
        post_id: short!.id,
        author_id: reader.id,
        body: `Short ${index}`,
      })),
      { post_id: draft!.id, author_id: reader.id, body: 'On a draft' },
    ])
    .execute();
});

afterAll(async () => {
  await cached?.close();
  await unfolded?.close();
  await folded?.close();
});

const page = `edges { cursor node { id body createdAt author { id name email }
  post { id title } } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`;

/** The same answer folded, unfolded and folded over the entity cache (a miss, then a hit). */
const compare = (query: string, variables: Record<string, unknown> = {}, token?: string) =>
  compareFolded({ unfolded, folded, cached: [cached, cached] }, query, variables, token);

/** What a field is selected as: a leaf alone, an object by what it reads of its parent. */
function selectionOf(field: GraphQLField<unknown, unknown>): string {
  const type = getNamedType(field.type);
  if (isLeafType(type)) return field.name;
  const fields = (type as GraphQLObjectType).getFields();
  return `${field.name} { ${'totalCount' in fields ? 'totalCount' : 'id'} }`;
}

/** A well-formed cursor of another ordering: refused by the comments field itself. */
const otherOrder = Buffer.from(
  JSON.stringify([1, 'post:CREATED_AT:DESC', '2030-01-01T00:00:00Z', '1']),
).toString('base64url');

const viewers = () => [undefined, reader.token, writer.token];

describe('comment pages folded into post(id:)', () => {
  it('answers the post page as the unfolded path does, in one statement instead of two', async () => {
    const query = `query($id: ID!) { post(id: $id) { title body createdAt author { name }
      comments(first: 20) { edges { node { body createdAt author { name } } } } } }`;
    for (const token of viewers()) {
      const { result, folded, unfolded } = await compare(query, { id: ids.long }, token);
      expect(result.data?.post.comments.edges).toHaveLength(20);
      expect([folded, unfolded]).toEqual(token ? [expect.any(Number), expect.any(Number)] : [1, 2]);
    }
  });

  it('pages forward and backward by cursor alike, ties included', async () => {
    const query = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      post(id: $id) { comments(first: $first, after: $after, last: $last, before: $before) {
        ${page} totalCount } } }`;
    let after: string | null = null;
    for (let step = 0; step < 5; step++) {
      const { result } = await compare(query, { id: ids.long, first: 6, after });
      after = result.data?.post.comments.pageInfo.endCursor;
    }
    expect(after).not.toBeNull();
    const { result } = await compare(query, { id: ids.long, last: 4 });
    await compare(query, {
      id: ids.long,
      last: 7,
      before: result.data?.post.comments.pageInfo.startCursor,
    });
    await compare(query, { id: ids.long, first: 0 });
    await compare(query, { id: ids.long });
  });

  it('answers aliases of many posts, fragments and hidden posts alike, one statement for all', async () => {
    const query = `query($a: ID!, $b: ID!, $c: ID!, $d: ID!, $n: Int) {
      a: post(id: $a) { ...Thread }
      b: post(id: $b) { ...Thread }
      c: post(id: $c) { ...Thread }
      d: post(id: $d) { ... on Node { id } ... on Post { title comments(first: $n) { ...Page } } }
    }
    fragment Thread on Post { title comments(first: $n) { ...Page } }
    fragment Page on CommentConnection { ${page} }`;
    const variables = { a: ids.long, b: ids.short, c: ids.draft, d: ids.empty, n: 2 };
    for (const token of viewers()) {
      const { result, folded, unfolded } = await compare(query, variables, token);
      // The draft is its writer's only.
      expect(result.data?.c === null).toBe(token !== writer.token);
      if (!token) expect([folded, unfolded]).toEqual([1, 2]);
    }
  });

  it('falls back where the fold cannot share a page, with the same answers and errors', async () => {
    const different = `query($id: ID!) { post(id: $id) {
      x: comments(first: 2) { ${page} } y: comments(first: 3) { ${page} totalCount } } }`;
    await compare(different, { id: ids.long });
    const countOnly = `query($id: ID!) { post(id: $id) { comments(first: 2) { totalCount }
      again: comments(first: 2) { edges { node { body } } } } }`;
    await compare(countOnly, { id: ids.long });
    const conditional = `query($id: ID!, $with: Boolean!) { post(id: $id) { title
      comments(first: 3) @include(if: $with) { ${page} } } }`;
    for (const value of [true, false]) {
      const { folded, unfolded } = await compare(conditional, { id: ids.long, with: value });
      expect([folded, unfolded]).toEqual(value ? [1, 2] : [1, 1]);
    }
    const invalid = `query($id: ID!, $first: Int, $last: Int, $after: String) { post(id: $id) {
      title comments(first: $first, last: $last, after: $after) { ${page} } } }`;
    for (const variables of [
      { first: 1000 },
      { first: 1, last: 1 },
      { first: 1, after: 'not-a-cursor' },
      { last: 1, after: otherOrder },
      { first: 1, after: otherOrder },
    ]) {
      const { result } = await compare(invalid, { id: ids.long, ...variables });
      expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      // Those the request checks pass reach the comments field, folded or not.
      if (result.data) expect(result.errors?.[0]?.path).toEqual(['post', 'comments']);
    }
  });

  it('fetches the author columns its comments read, and again where another selection reads more', async () => {
    // Staff see every email: a page folded with names alone would answer null for them.
    const admin = await createUser(folded.deps.db, 'ADMIN', 'Fold Admin');
    const statements = async (query: string) => {
      const result = await folded.gql(query, { id: ids.long }, { debug: true, token: admin.token });
      expect(result.errors).toBeUndefined();
      return ((result.extensions?.sql.statements ?? []) as { sql: string }[])
        .map((statement) => statement.sql)
        .filter((sql) => sql.includes('from "comments"'));
    };
    const names = `query($id: ID!) { post(id: $id) { title comments(first: 5) {
      edges { node { id body author { id name __typename } } } } } }`;
    const aliased = `query($id: ID!) { post(id: $id) {
      comments(first: 5) { edges { node { author { name } } } }
      wide: comments(first: 5) { edges { node { author { ... on User { email role createdAt } } } } } } }`;
    const nested = `query($id: ID!) { post(id: $id) { comments(first: 5) { edges { node {
      author { name } post { comments(first: 5) { edges { node { author { id name email role createdAt } } } } } } } } } }`;
    // Two fields of one post, each folding the page at its own width.
    const twice = `query($id: ID!) {
      a: post(id: $id) { comments(first: 5) { edges { node { author { name } } } } }
      b: post(id: $id) { comments(first: 5) { edges { node { author { name email } } } } } }`;
    for (const token of [...viewers(), admin.token]) {
      await compare(names, { id: ids.long }, token);
      await compare(twice, { id: ids.long }, token);
      const { result } = await compare(aliased, { id: ids.long }, token);
      if (token === admin.token) {
        expect(result.data?.post.wide.edges[0].node.author.email).toEqual(expect.any(String));
      }
      await compare(nested, { id: ids.long }, token);
    }
    const [narrow, ...none] = await statements(names);
    expect(none).toEqual([]);
    expect(narrow).toContain('comment_authors.name');
    expect(narrow).not.toContain('comment_authors.email');
    const [wide, ...noMore] = await statements(aliased);
    expect(noMore).toEqual([]);
    expect(wide).toContain('comment_authors.email');
    // The nested page reads more than the fold fetched: one more statement, every author column.
    const [fold, again, ...rest] = await statements(nested);
    expect(rest).toEqual([]);
    expect(fold).not.toContain('comment_authors.email');
    expect(again).toContain('"users"."email" as "author_email"');
  });
});

describe('post pages folded into node(id:) of a User', () => {
  const posts = `edges { cursor node { id title slug status body summary keywords wordCount
    readingMinutes readabilityScore seoScore createdAt updatedAt publishedAt author { name }
    comments { totalCount } } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`;

  it('answers the profile as the unfolded path does, in one statement instead of two', async () => {
    const query = `query($id: ID!) { node(id: $id) { ... on User { name
      posts(first: 10) { edges { node { id title comments { totalCount } } } } } } }`;
    for (const token of viewers()) {
      const { result, folded, unfolded } = await compare(query, { id: writer.globalId }, token);
      // The draft is its writer's only.
      expect(result.data?.node.posts.edges).toHaveLength(token === writer.token ? 4 : 3);
      expect([folded, unfolded]).toEqual(token ? [expect.any(Number), expect.any(Number)] : [1, 2]);
    }
  });

  it('answers every column, cursors, counts and orders alike, forward and backward', async () => {
    const query = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String,
      $order: PostOrder) { node(id: $id) { id ...Profile } }
      fragment Profile on User { posts(first: $first, after: $after, last: $last, before: $before,
        orderBy: $order) { ${posts} totalCount } }`;
    for (const token of viewers()) {
      let after: string | null = null;
      for (let step = 0; step < 3; step++) {
        const { result } = await compare(query, { id: writer.globalId, first: 2, after }, token);
        after = result.data?.node.posts.pageInfo.endCursor;
      }
      const { result } = await compare(query, { id: writer.globalId, last: 1 }, token);
      const before = result.data?.node.posts.pageInfo.startCursor;
      await compare(query, { id: writer.globalId, last: 2, before }, token);
      const order = { field: 'TITLE', direction: 'ASC' };
      await compare(query, { id: writer.globalId, first: 3, order }, token);
      await compare(query, { id: reader.globalId, first: 3 }, token);
    }
  });

  it('folds a page of any selection with the columns it reads, one statement fewer', async () => {
    const admin = await createUser(folded.deps.db, 'ADMIN', 'Fold Admin');
    const profile = (selection: string) => `query($id: ID!) { node(id: $id) { ... on User {
      posts(first: 10) { edges { node { id ${selection} } } } } } }`;
    const options = { debug: true, token: admin.token };
    const asked = await folded.gql(profile('title'), { id: writer.globalId }, options);
    // The page selects what User.posts's width names (the title, and the order's column for
    // cursors), so the entry it primes is the one the field reads (the admin's token is first).
    const statements = (asked.extensions?.sql.statements ?? []) as { sql: string }[];
    const fold = statements.at(-1)?.sql;
    expect(fold).toContain(
      'json_build_array("posts"."id"::text, "posts"."title", "posts"."created_at"::text)',
    );
    expect(fold).toContain(
      '(select "posts"."id", "posts"."title", "posts"."created_at" from "posts" where',
    );
    const post = schema.getType('Post') as GraphQLObjectType;
    const user = schema.getType('User') as GraphQLObjectType;
    // Each Post field on its own, `author` once per User field: a column the folded row lacked
    // would answer null or cost the statement of a full row.
    const selections = Object.values(post.getFields()).flatMap((field) =>
      field.name === 'author'
        ? Object.values(user.getFields()).map((userField) => `author { ${selectionOf(userField)} }`)
        : [selectionOf(field)],
    );
    expect(selections.length).toBeGreaterThan(20);
    for (const selection of selections) {
      for (const token of [undefined, writer.token]) {
        const { folded, unfolded } = await compare(
          profile(selection),
          { id: writer.globalId },
          token,
        );
        if (!token) expect(folded, selection).toBe(unfolded - 1);
      }
    }
  });

  it('answers aliases of many users in one statement, and falls back where it cannot fold', async () => {
    const many = `query($a: ID!, $b: ID!, $c: ID!) {
      a: node(id: $a) { ... on User { name posts(first: 2) { ${posts} } } }
      b: node(id: $b) { ... on User { name posts(first: 2) { ${posts} } } }
      c: node(id: $c) { id ... on Post { title } ... on User { name } } }`;
    const variables = { a: writer.globalId, b: reader.globalId, c: ids.long };
    const { folded: statements } = await compare(many, variables);
    // The two users with their pages, then the post.
    expect(statements).toBe(2);
    const fallbacks = [
      `query($id: ID!) { node(id: $id) { ... on User { x: posts(first: 1) { ${posts} }
        y: posts(first: 2) { ${posts} } } } }`,
      `query($id: ID!) { node(id: $id) { ... on User { posts(first: 2,
        filter: { status: PUBLISHED }) { ${posts} } } } }`,
      'query($id: ID!) { node(id: $id) { ... on User { posts(first: 2) { totalCount } } } }',
      'query($id: ID!) { node(id: $id) { ... on User { name postCount } } }',
      `query($id: ID!, $with: Boolean!) { node(id: $id) { ... on User {
        posts(first: 2) @include(if: $with) { ${posts} } } } }`,
    ];
    for (const query of fallbacks) {
      for (const token of viewers()) {
        await compare(query, { id: writer.globalId, with: true }, token);
        await compare(query, { id: writer.globalId, with: false }, token);
      }
    }
    const invalid = `query($id: ID!) { node(id: $id) { ... on User { name
      posts(first: 1, last: 1) { ${posts} } } } }`;
    const { result } = await compare(invalid, { id: writer.globalId });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    for (const id of ['VXNlcjo5OTk5OTk5', 'bm90LWFuLWlk', reader.globalId]) {
      await compare(`query($id: ID!) { node(id: $id) { ... on User { posts { ${posts} } } } }`, {
        id,
      });
    }
  });
});
