import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { compareFolded } from '../../helpers/fold.ts';
import { redisUrl } from '../../helpers/services.ts';

/**
 * The post page fold fetches its comments' authors' names alone unless the selection reads
 * another author field (src/modules/comment/comment.pages.ts, `authorWidthOf`). Documents here
 * hide the other author fields where a look-ahead could miss them (fragments on User and Node,
 * interface spreads, aliases, @include, a second selection of the same page through `node(id:)`
 * or a comment's `post`), for viewers who may and may not see emails; every answer must be the
 * unfolded one (QUERY_FOLDING=off), and a narrow author must never reach the entity cache or
 * another request as a whole user.
 */
let folded: TestApp;
let unfolded: TestApp;
let cachedA: TestApp;
let cachedB: TestApp;
let writer: TestUser;
let commenter: TestUser;
let editor: TestUser;
let postId: string;

beforeAll(async () => {
  folded = await startTestApp({ CACHE: 'off' });
  unfolded = await startTestApp({ CACHE: 'off', QUERY_FOLDING: 'off' }, folded);
  cachedA = await startTestApp({ REDIS_URL: redisUrl, CACHE: 'on', RESPONSE_CACHE: 'off' }, folded);
  cachedB = await startTestApp({ REDIS_URL: redisUrl, CACHE: 'on', RESPONSE_CACHE: 'off' }, folded);
  const { db } = folded.deps;
  writer = await createUser(db, 'AUTHOR', 'Narrow Writer');
  commenter = await createUser(db, 'VIEWER', 'Narrow Commenter');
  editor = await createUser(db, 'EDITOR', 'Narrow Editor');
  const [post] = await createPosts(db, [{ authorId: writer.id, title: 'Narrow authors' }]);
  postId = globalId('Post', post!.id);
  await db
    .insertInto('comments')
    .values(
      Array.from({ length: 4 }, (_, index) => ({
        post_id: post!.id,
        author_id: index % 2 ? commenter.id : writer.id,
        body: `Narrow ${index}`,
      })),
    )
    .execute();
});

afterAll(async () => {
  await cachedB?.close();
  await cachedA?.close();
  await unfolded?.close();
  await folded?.close();
});

const viewers = () => [undefined, commenter.token, writer.token, editor.token];

const compare = (query: string, variables: Record<string, unknown>, token?: string) =>
  compareFolded({ unfolded, folded, cached: [cachedA, cachedB, cachedA] }, query, variables, token);

/** A post page whose comments' `author` selects `author` (the text inside its braces). */
const pageWith = (author: string, extra = '') =>
  `comments(first: 3) { edges { node { body author { ${author} } } } } ${extra}`;

describe('the fold of comment authors against hidden author fields', () => {
  it('answers every hidden author field as the unfolded path, for every viewer', async () => {
    const shapes: { author: string; fragments?: string }[] = [
      { author: '__typename' },
      { author: 'id' },
      { author: 'name ... on User { email }' },
      { author: 'name ...Mail', fragments: 'fragment Mail on User { email role }' },
      { author: '... on Node { id ... on User { createdAt } }' },
      { author: 'id ...Any', fragments: 'fragment Any on Node { ... on User { email } }' },
      { author: 'a: name b: email' },
      { author: 'n: name id' },
    ];
    for (const token of viewers()) {
      for (const { author, fragments = '' } of shapes) {
        await compare(
          `query($id: ID!) { post(id: $id) { title ${pageWith(author)} } } ${fragments}`,
          { id: postId },
          token,
        );
      }
    }
  });

  it('reads the other author fields of another alias, a fragment on Post, and @include', async () => {
    const queries = [
      // Two aliases of the same page: one narrow, one reading emails in a named fragment used
      // elsewhere too.
      `query($id: ID!) { post(id: $id) { ${pageWith('id')} other: comments(first: 3) { edges { node { author { ...U } } } } }
        viewer { ...U } } fragment U on User { id email }`,
      // The page selected through a fragment on Post, the email in a fragment on Comment.
      `query($id: ID!) { post(id: $id) { ...P } } fragment P on Post { comments(first: 3) { edges { node { ...C } } } }
        fragment C on Comment { author { name } ... on Comment { author { role } } }`,
      // An author alias reading the email beside a narrow one.
      `query($id: ID!) { post(id: $id) { comments(first: 3) { edges { node { author { name } who: author { email } } } } } }`,
    ];
    for (const token of viewers()) {
      for (const query of queries) await compare(query, { id: postId }, token);
      const conditional = `query($id: ID!, $mail: Boolean!) { post(id: $id) { ${pageWith('name email @include(if: $mail)')} } }`;
      // One parsed document, its width changing with the variables, in both orders.
      for (const mail of [false, true, false, true]) {
        await compare(conditional, { id: postId, mail }, token);
      }
    }
  });

  it('reloads a page primed narrow when the same post is read wider through node(id:) or a comment’s post', async () => {
    const queries = [
      `query($id: ID!) { a: node(id: $id) { ... on Post { ${pageWith('name')} } }
        b: post(id: $id) { ${pageWith('name email role createdAt')} } }`,
      `query($id: ID!) { b: post(id: $id) { ${pageWith('name email')} }
        a: node(id: $id) { ... on Post { ${pageWith('name')} } } }`,
      `query($id: ID!) { post(id: $id) { comments(first: 3) { edges { node { author { name }
        post { ${pageWith('email createdAt')} } } } } } }`,
    ];
    for (const token of viewers()) {
      for (const query of queries) await compare(query, { id: postId }, token);
    }
  });

  it('never stores or primes a narrow author as a whole user: same request, other requests, other instance', async () => {
    const narrow = `query($id: ID!) { post(id: $id) { ${pageWith('name')} } }`;
    const whole = `query($id: ID!, $user: ID!) { post(id: $id) { ${pageWith('name')} }
      node(id: $user) { ... on User { id name email role createdAt } } }`;
    const user = `query($user: ID!) { node(id: $user) { ... on User { id name email role createdAt } } }`;
    for (const token of [editor.token, commenter.token]) {
      await compare(narrow, { id: postId }, token);
      // In the request that folded narrow: the author as a node is the whole user.
      const { result } = await compare(whole, { id: postId, user: commenter.globalId }, token);
      expect(result.data!.node.role).toBe('VIEWER');
      expect(result.data!.node.createdAt).toEqual(expect.any(String));
      // A comment of the narrow page, as a node in the same request: its author whole.
      const comment = `query($id: ID!) { post(id: $id) { comments(first: 1) { edges { node { id } } } } }`;
      const commentId = (await folded.gql(comment, { id: postId })).data!.post.comments.edges[0]
        .node.id as string;
      await compare(
        `query($id: ID!, $comment: ID!) { post(id: $id) { ${pageWith('name')} }
          node(id: $comment) { ... on Comment { author { name email role createdAt } } } }`,
        { id: postId, comment: commentId },
        token,
      );
      // Later requests, on both instances sharing the entity cache.
      await compare(user, { user: commenter.globalId }, token);
      await compare(user, { user: writer.globalId }, token);
    }
    // Every user entry the entity cache holds for the comment authors is a whole row.
    const redis = new Redis(redisUrl);
    try {
      for (const id of [commenter.id, writer.id]) {
        const keys: string[] = [];
        for await (const batch of redis.scanStream({
          match: `${cachedA.deps.config.REDIS_PREFIX}{cache}:e*:user:${id}`,
          count: 1000,
        }))
          keys.push(...(batch as string[]));
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) {
          if ((await redis.type(key)) !== 'string') continue;
          // An entry is its guard line, then the row.
          const stored = JSON.parse((await redis.get(key))!.split('\n').at(-1)!) as Record<
            string,
            unknown
          >;
          expect(stored).toMatchObject({ id, email: expect.any(String), role: expect.any(String) });
          expect(stored.created_at).toBeTruthy();
        }
      }
    } finally {
      redis.disconnect();
    }
  });
});

describe('the fold width these documents reach', () => {
  let admin: TestUser | undefined;
  /** The folded statement's text, and how many statements the request ran. */
  const statementsOf = async (query: string, variables: Record<string, unknown>) => {
    // An admin sees the statements' text.
    admin ??= await createUser(folded.deps.db, 'ADMIN', 'Narrow Admin');
    const result = await folded.gql(query, variables, { debug: true, token: admin.token });
    expect(result.errors).toBeUndefined();
    const { queries, statements } = result.extensions!.sql as {
      queries: number;
      statements: { sql: string }[];
    };
    return { queries, texts: statements.map((statement) => JSON.stringify(statement)) };
  };
  const foldedText = (texts: string[]) => texts.find((text) => text.includes('comment_page'));

  it('folds names alone only where no other author field is read, wide otherwise', async () => {
    const narrow = await statementsOf(
      `query($id: ID!) { post(id: $id) { ${pageWith('id name __typename')} } }`,
      { id: postId },
    );
    expect(foldedText(narrow.texts)).toBeDefined();
    expect(foldedText(narrow.texts)).not.toContain('comment_authors.email');
    for (const author of ['name ... on User { email }', '... on Node { ... on User { role } }']) {
      const wide = await statementsOf(`query($id: ID!) { post(id: $id) { ${pageWith(author)} } }`, {
        id: postId,
      });
      expect(foldedText(wide.texts)).toContain('comment_authors.email');
    }
    // A page folded narrow, read wider through node(id:) in the same document: node(id:) of a
    // Post folds its own page with every author column, which replaces the narrow one, so the
    // page is not loaded a third time (before node(id:) folded: loaded again, unfolded, wide).
    const reread = await statementsOf(
      `query($id: ID!) { a: post(id: $id) { ${pageWith('name')} }
        b: node(id: $id) { ... on Post { ${pageWith('name email')} } } }`,
      { id: postId },
    );
    const folds = reread.texts.filter((text) => text.includes('comment_page'));
    expect(folds).toHaveLength(2);
    expect(folds.filter((text) => text.includes('comment_authors.email'))).toHaveLength(1);
    expect(
      reread.texts.filter((text) => text.includes('lateral') && text.includes('author_email')),
    ).toHaveLength(0);
  });
});
