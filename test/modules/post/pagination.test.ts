import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, localId, type TestUser } from '../../helpers/factories.ts';

let app: TestApp;
let author: TestUser;

const page = /* GraphQL */ `
  query Page($first: Int, $after: String, $last: Int, $before: String, $orderBy: PostOrder) {
    posts(first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy) {
      edges { cursor node { id title createdAt } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`;

interface Edge {
  cursor: string;
  node: { id: string; title: string; createdAt: string };
}

async function walk(
  direction: 'forward' | 'backward',
  size: number,
  orderBy?: unknown,
): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 1000; guard += 1) {
    const variables: Record<string, unknown> =
      direction === 'forward'
        ? { first: size, after: cursor, orderBy }
        : { last: size, before: cursor, orderBy };
    const result = await app.gql(page, variables);
    expect(result.errors).toBeUndefined();
    const { edges, pageInfo } = result.data!.posts as {
      edges: Edge[];
      pageInfo: Record<string, any>;
    };
    const ids = edges.map((edge) => edge.node.id);
    if (direction === 'forward') seen.push(...ids);
    else seen.unshift(...ids);
    const more = direction === 'forward' ? pageInfo.hasNextPage : pageInfo.hasPreviousPage;
    if (!more) return seen;
    cursor = direction === 'forward' ? pageInfo.endCursor : pageInfo.startCursor;
  }
  throw new Error('pagination did not terminate');
}

beforeAll(async () => {
  // Rows are inserted straight into the table (to control timestamps), past the writes that
  // invalidate cached responses: these tests are about the keyset, so the cache stays off.
  app = await startTestApp({ CACHE: 'off' });
  author = await createUser(app.deps.db, 'AUTHOR');
  // 120 posts sharing only 12 distinct timestamps and 6 titles: heavy ties on every sort key.
  await createPosts(
    app.deps.db,
    Array.from({ length: 120 }, (_, index) => ({
      authorId: author.id,
      title: `Title ${index % 6}`,
      createdAt: `2026-01-01 00:00:${String(index % 12).padStart(2, '0')}.123456+00`,
    })),
  );
});

afterAll(() => app?.close());

async function expectedOrder(orderSql: string): Promise<string[]> {
  const { rows } = await sql<{
    id: string;
  }>`select id from posts order by ${sql.raw(orderSql)}`.execute(app.deps.db);
  return rows.map((row) => row.id);
}

describe('keyset pagination', () => {
  it.each([1, 7, 50])(
    'walks forward and backward with page size %i, every row once, in order',
    async (size) => {
      const expected = await expectedOrder('created_at desc, id desc');
      const forward = (await walk('forward', size)).map(localId);
      expect(forward).toEqual(expected);
      const backward = (await walk('backward', size)).map(localId);
      expect(backward).toEqual(expected);
    },
  );

  it('breaks ties on text sort keys with the id', async () => {
    const expected = await expectedOrder('title asc, id asc');
    const forward = (await walk('forward', 7, { field: 'TITLE', direction: 'ASC' })).map(localId);
    expect(forward).toEqual(expected);
  });

  /** The row's exact sort key: the API's DateTime drops microseconds, a tie needs them. */
  async function createdAtOf(globalPostId: string): Promise<string> {
    const { rows } = await sql<{ created_at: string }>`
      select created_at::text as created_at from posts where id = ${localId(globalPostId)}
    `.execute(app.deps.db);
    return rows[0]!.created_at;
  }

  async function insertPost(title: string, createdAt?: string): Promise<string> {
    const [post] = await createPosts(app.deps.db, [{ authorId: author.id, title, createdAt }]);
    return post!.id;
  }

  it('walks forward across inserts: rows ahead of the cursor show up, rows behind do not', async () => {
    const first = await app.gql(page, { first: 10 });
    const firstIds: string[] = first.data!.posts.edges.map((edge: Edge) => edge.node.id);
    const cursorAt = await createdAtOf(firstIds.at(-1)!);
    // Behind the cursor (already walked past): a newer post, and a tie on the cursor's
    // timestamp whose higher id sorts before the cursor row.
    const behind = [await insertPost('Newest'), await insertPost('Tie behind', cursorAt)];
    // Ahead of the cursor: older than everything walked so far.
    const ahead = [
      await insertPost('Oldest', '2025-12-31 23:59:59.999999+00'),
      await insertPost('Just older', '2026-01-01 00:00:00.000001+00'),
    ];

    const restIds: string[] = [];
    let cursor: string | null = first.data!.posts.pageInfo.endCursor;
    while (cursor) {
      const rest = await app.gql(page, { first: 7, after: cursor });
      expect(rest.errors).toBeUndefined();
      restIds.push(...rest.data!.posts.edges.map((edge: Edge) => edge.node.id));
      cursor = rest.data!.posts.pageInfo.hasNextPage ? rest.data!.posts.pageInfo.endCursor : null;
    }
    const walked = [...firstIds, ...restIds].map(localId);
    const expected = (await expectedOrder('created_at desc, id desc')).filter(
      (id) => !behind.includes(id),
    );
    expect(walked).toEqual(expected);
    for (const id of ahead) expect(walked).toContain(id);
  });

  it('walks backward across inserts: rows ahead of the cursor show up, rows behind do not', async () => {
    const last = await app.gql(page, { last: 10 });
    const lastIds: string[] = last.data!.posts.edges.map((edge: Edge) => edge.node.id);
    const cursorAt = await createdAtOf(lastIds[0]!);
    // Behind a backward walk: older than every row already returned.
    const behind = [await insertPost('Ancient', '2020-01-01 00:00:00+00')];
    // Ahead of it: a tie on the cursor's timestamp (higher id, so it sorts before the cursor
    // row) and a post newer than everything.
    const ahead = [await insertPost('Tie ahead', cursorAt), await insertPost('Newest again')];

    const restIds: string[] = [];
    let cursor: string | null = last.data!.posts.pageInfo.startCursor;
    while (cursor) {
      const rest = await app.gql(page, { last: 7, before: cursor });
      expect(rest.errors).toBeUndefined();
      restIds.unshift(...rest.data!.posts.edges.map((edge: Edge) => edge.node.id));
      cursor = rest.data!.posts.pageInfo.hasPreviousPage
        ? rest.data!.posts.pageInfo.startCursor
        : null;
    }
    const walked = [...restIds, ...lastIds].map(localId);
    const expected = (await expectedOrder('created_at desc, id desc')).filter(
      (id) => !behind.includes(id),
    );
    expect(walked).toEqual(expected);
    for (const id of ahead) expect(walked).toContain(id);
  });

  it.each([
    ['garbage', 'not-a-cursor'],
    [
      'tampered json',
      Buffer.from('[1,"post:CREATED_AT:DESC","drop table",1]').toString('base64url'),
    ],
    ['wrong ordering', Buffer.from('[1,"post:TITLE:ASC","x","1"]').toString('base64url')],
    [
      'sql in id',
      Buffer.from('[1,"post:CREATED_AT:DESC","2026-01-01 00:00:00+00","1 or 1=1"]').toString(
        'base64url',
      ),
    ],
  ])('refuses a %s cursor with BAD_USER_INPUT', async (_name, cursor) => {
    const result = await app.gql(page, { first: 5, after: cursor });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(JSON.stringify(result)).not.toMatch(/select|stack/i);
  });

  it('refuses page sizes above the documented cap', async () => {
    const result = await app.gql(page, { first: 101 });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toContain('between 0 and 100');
  });
});
