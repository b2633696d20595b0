import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  quireCreatePostMutation,
  readShapes,
  type ShapeSubjects,
} from '../../../bench/scenarios/shapes.queries.ts';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

/**
 * The everyday shapes of `npm run bench` (the same query texts, from bench/scenarios), run
 * through the full yoga pipeline with `x-quire-debug: 1`: each must keep its statement count and
 * answer the right rows. The N-alias case is in statements-per-shape.test.ts (1, 5, 30 aliases).
 */
let app: TestApp;
let author: TestUser;
let subjects: ShapeSubjects;
/** Titles of the author's published posts, newest first. */
let authorTitles: string[];
/** Titles of the tag's published posts, newest first. */
let tagTitles: string[];
const shapes = () => readShapes(subjects);
const shape = (prefix: string) => shapes().find((candidate) => candidate.name.startsWith(prefix))!;

const minutesAgo = (minutes: number) =>
  new Date(Date.UTC(2026, 0, 1) - minutes * 60_000).toISOString();

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  author = await createUser(db, 'AUTHOR', 'Profile Author');
  const other = await createUser(db, 'AUTHOR', 'Other Author');
  const readers = await Promise.all(
    Array.from({ length: 3 }, (_, index) => createUser(db, 'VIEWER', `Reader ${index}`)),
  );
  // 14 posts by the author (every fifth a draft) and 16 by another, interleaved in time.
  const seeds = Array.from({ length: 30 }, (_, index) => ({
    authorId: index % 2 === 0 && index < 28 ? author.id : other.id,
    title: `Everyday ${index}`,
    status: index % 5 === 4 ? ('DRAFT' as const) : ('PUBLISHED' as const),
    createdAt: minutesAgo(index),
  }));
  const posts = await createPosts(db, seeds);
  await sql`update posts set summary = replace(title, 'Everyday', 'Summary')`.execute(db);
  authorTitles = seeds
    .filter((seed) => seed.authorId === author.id && seed.status === 'PUBLISHED')
    .map((seed) => seed.title);
  const [tag, otherTag] = await db
    .insertInto('tags')
    .values([{ name: 'everyday' }, { name: 'elsewhere' }])
    .returning('id')
    .execute();
  // The tag on all but the first two posts (so its page is not the front page); the other tag on all.
  await db
    .insertInto('post_tags')
    .values([
      ...posts.slice(2).map((post) => ({ post_id: post.id, tag_id: tag!.id })),
      ...posts.map((post) => ({ post_id: post.id, tag_id: otherTag!.id })),
    ])
    .execute();
  tagTitles = seeds
    .slice(2)
    .filter((seed) => seed.status === 'PUBLISHED')
    .map((seed) => seed.title);
  // Post 0 gets 22 comments (its page shows the newest 20); post i has i % 3 others.
  await db
    .insertInto('comments')
    .values([
      ...Array.from({ length: 22 }, (_, index) => ({
        post_id: posts[0]!.id,
        author_id: readers[index % 3]!.id,
        body: `Comment ${index}`,
        created_at: minutesAgo(100 - index),
      })),
      ...posts.slice(1).flatMap((post, index) =>
        Array.from({ length: (index + 1) % 3 }, (_, n) => ({
          post_id: post.id,
          author_id: readers[n]!.id,
          body: `Other comment ${n}`,
        })),
      ),
    ])
    .execute();
  subjects = {
    userId: author.id,
    userGlobalId: author.globalId,
    postId: posts[0]!.id,
    postGlobalId: globalId('Post', posts[0]!.id),
    tagName: 'everyday',
    tagId: tag!.id,
  };
});

afterAll(() => app?.close());

async function run(query: string, token?: string, variables: Record<string, unknown> = {}) {
  const result = await app.gql(query, variables, { debug: true, token });
  expect(result.errors).toBeUndefined();
  return { data: result.data!, queries: result.extensions?.sql.queries as number };
}

/** Comments on post i (i ≥ 1) as inserted above. */
const commentsOn = (title: string) => {
  const index = Number(title.split(' ')[1]);
  return index === 0 ? 22 : index % 3;
};

describe('everyday shapes: statements and rows', () => {
  it('(1) user profile: the user with one post page carrying each post’s comment count, one statement', async () => {
    const { data, queries } = await run(shape('(1)').quire);
    expect(data.node.name).toBe('Profile Author');
    const titles = data.node.posts.edges.map((edge: any) => edge.node.title);
    expect(titles).toEqual(authorTitles.slice(0, 10));
    for (const edge of data.node.posts.edges)
      expect(edge.node.comments.totalCount).toBe(commentsOn(edge.node.title));
    expect(queries).toBe(1);
  });

  it('(2) post page: the post with its author and its 20 comments with theirs, one statement', async () => {
    const { data, queries } = await run(shape('(2)').quire);
    expect(data.post.title).toBe('Everyday 0');
    expect(data.post.author.name).toBe('Profile Author');
    const comments = data.post.comments.edges.map((edge: any) => edge.node);
    expect(comments.map((comment: any) => comment.body)).toEqual(
      Array.from({ length: 20 }, (_, index) => `Comment ${21 - index}`),
    );
    expect(comments.map((comment: any) => comment.author.name)).toEqual(
      Array.from({ length: 20 }, (_, index) => `Reader ${(21 - index) % 3}`),
    );
    expect(queries).toBe(1);
  });

  it('(3) tag page: the newest 20 published posts of the tag with authors, one statement', async () => {
    const { data, queries } = await run(shape('(3)').quire);
    const nodes = data.posts.edges.map((edge: any) => edge.node);
    expect(nodes.map((node: any) => node.title)).toEqual(tagTitles.slice(0, 20));
    expect(nodes.every((node: any) => /Author$/.test(node.author.name))).toBe(true);
    expect(queries).toBe(1);
  });

  it('(4) ten-item list: one statement', async () => {
    const { data, queries } = await run(shape('(4)').quire);
    expect(data.posts.edges.map((edge: any) => edge.node.title)).toHaveLength(10);
    expect(data.posts.edges[0].node.title).toBe('Everyday 0');
    expect(queries).toBe(1);
  });

  it('(5) home feed: posts with authors and comment counts, then their tags', async () => {
    const { data, queries } = await run(shape('(5)').quire);
    const nodes = data.posts.edges.map((edge: any) => edge.node);
    expect(nodes).toHaveLength(20);
    for (const node of nodes) {
      const index = Number(node.title.split(' ')[1]);
      expect(node.summary).toBe(`Summary ${index}`);
      expect(node.tags.map((tag: any) => tag.name).sort()).toEqual(
        index < 2 ? ['elsewhere'] : ['elsewhere', 'everyday'],
      );
      expect(node.comments.totalCount).toBe(commentsOn(node.title));
    }
    expect(queries).toBe(2);
  });

  it('(6) createPost: the insert alone once the token is warm, and the post is stored', async () => {
    const create = async () => {
      const title = `Everyday write ${Date.now()} ${Math.random()}`;
      const { data, queries } = await run(quireCreatePostMutation, author.token, { title });
      const id = Buffer.from(data.createPost.post.id, 'base64url').toString().split(':')[1]!;
      const stored = await app.deps.db
        .selectFrom('posts')
        .select(['title', 'author_id'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      expect(stored).toEqual({ title, author_id: author.id });
      return queries;
    };
    // A cold token: its lookup, its last_used_at stamp, the insert. A warm one (the viewer held
    // in memory, last_used_at within LAST_USED_RESOLUTION_MS): the insert alone. The viewer is
    // kept once this instance hears viewer changes (its LISTEN runs, a few ms after first use).
    expect(await create()).toBe(3);
    for (const deadline = Date.now() + 5000; (await create()) !== 1; ) {
      if (Date.now() > deadline) throw new Error('the token never came from memory');
    }
    expect(await create()).toBe(1);
  });
});
