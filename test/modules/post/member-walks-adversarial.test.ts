import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, globalId, type TestUser } from '../../helpers/factories.ts';

/**
 * Adversarial check of the merged keyset walks (mergesWalks, tagPage in post.repository.ts): an
 * author's drafts interleaved with published posts on few distinct created_at values (ties broken
 * by id), every page walked forwards and backwards with the cursors the previous page gave, and
 * compared with a brute-force SQL of what the viewer may see. No other author's draft may show
 * through posts, tag pages, profiles, node(id:), search or counts.
 */
let app: TestApp;
let alice: TestUser;
let bob: TestUser;
let editor: TestUser;
let redTagId: string;
const STATUSES = ['PUBLISHED', 'DRAFT', 'PUBLISHED', 'REVIEW', 'ARCHIVED', 'PUBLISHED'];

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  alice = await createUser(db, 'AUTHOR', 'Alice');
  bob = await createUser(db, 'AUTHOR', 'Bob');
  editor = await createUser(db, 'EDITOR', 'Ed');
  const carol = await createUser(db, 'AUTHOR', 'Carol');
  const authors = [alice.id, bob.id, carol.id];
  // 60 posts on 7 created_at values: ties everywhere, statuses and authors interleaved.
  await sql`
    insert into posts (author_id, title, slug, body, status, published_at, created_at, updated_at)
    select (${authors}::bigint[])[1 + (n / 2 + n / 7) % 3],
      'T' || n, 'walk-' || n,
      case when n % 4 = 0 then 'about a server' else 'about a garden' end,
      s.status, case when s.status = 'PUBLISHED' then now() end,
      timestamptz '2024-01-01' + (n % 7) * interval '1 hour', now()
    from generate_series(1, 60) n,
      lateral (select (${STATUSES}::text[])[1 + (n * 7) % 6] as status) s`.execute(db);
  await sql`insert into tags (name) values ('red'), ('blue')`.execute(db);
  await sql`
    insert into post_tags (post_id, tag_id)
    select posts.id, tags.id from posts join tags
      on (tags.name = 'red' and posts.id % 2 = 0) or (tags.name = 'blue' and posts.id % 5 = 0)`.execute(
    db,
  );
  redTagId = (
    await db.selectFrom('tags').select('id').where('name', '=', 'red').executeTakeFirstOrThrow()
  ).id;
}, 60_000);

afterAll(async () => {
  await app?.close();
});

type Viewer = 'anonymous' | 'alice' | 'editor';
/** The order every walk below uses (the merged walks are the creation order's alone). */
let orderField: 'CREATED_AT' | 'TITLE' = 'CREATED_AT';
const tokenOf = (viewer: Viewer) =>
  viewer === 'alice' ? alice.token : viewer === 'editor' ? editor.token : undefined;

interface Filter {
  tag?: string;
  status?: string;
  authorId?: string;
  search?: string;
}

/** Titles the viewer may see under the filter, in (created_at, id) order: the brute force. */
async function expected(viewer: Viewer, filter: Filter, direction: 'ASC' | 'DESC') {
  const visible =
    viewer === 'editor'
      ? sql`true`
      : viewer === 'alice'
        ? sql`(p.status = 'PUBLISHED' or p.author_id = ${alice.id})`
        : sql`p.status = 'PUBLISHED'`;
  const rows = await sql<{ title: string }>`
    select p.title from posts p
    where ${visible}
      and (${filter.status ?? null}::text is null or p.status = ${filter.status ?? null})
      and (${filter.authorId ?? null}::bigint is null or p.author_id = ${filter.authorId ?? null})
      and (${filter.tag ?? null}::text is null or exists (
        select 1 from post_tags pt join tags t on t.id = pt.tag_id
        where pt.post_id = p.id and t.name = ${filter.tag ?? null}))
      and (${filter.search ?? null}::text is null
        or p.search @@ websearch_to_tsquery('english', ${filter.search ?? null}))
    order by ${sql.raw(orderField === 'TITLE' ? 'p.title collate "C"' : 'p.created_at')} ${sql.raw(direction)},
      p.id ${sql.raw(direction)}`.execute(app.deps.db);
  return rows.rows.map((row) => row.title);
}

interface Page {
  edges: { cursor: string; node: { title: string; status: string } }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
  totalCount: number;
}

const PAGE = `edges { cursor node { title status } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount`;

/** One page through the root list, a tag's node or a user's node, as `via` says. */
async function page(
  viewer: Viewer,
  via: 'root' | 'tag' | 'user',
  filter: Filter,
  direction: 'ASC' | 'DESC',
  args: { first?: number; after?: string; last?: number; before?: string },
): Promise<Page> {
  const given = filter.authorId
    ? { ...filter, authorId: globalId('User', filter.authorId) }
    : filter;
  const variables = { ...args, filter: given, order: { field: orderField, direction } };
  const argsText = `first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $order`;
  const defs =
    '$first: Int, $after: String, $last: Int, $before: String, $filter: PostFilter, $order: PostOrder';
  const query =
    via === 'root'
      ? `query (${defs}) { list: posts(${argsText}) { ${PAGE} } }`
      : via === 'tag'
        ? `query (${defs}, $id: ID!) { node(id: $id) { ... on Tag { list: posts(${argsText}) { ${PAGE} } } } }`
        : `query (${defs}, $id: ID!) { node(id: $id) { ... on User { list: posts(${argsText}) { ${PAGE} } } } }`;
  const id =
    via === 'tag'
      ? globalId('Tag', redTagId)
      : via === 'user'
        ? globalId('User', alice.id)
        : undefined;
  const result = await app.gql(
    query,
    { ...variables, ...(id ? { id } : {}) },
    { token: tokenOf(viewer) },
  );
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return (via === 'root' ? result.data!.list : result.data!.node.list) as Page;
}

/** Walks every page forwards (first/after) and backwards (last/before) and checks each. */
async function walkAll(
  viewer: Viewer,
  via: 'root' | 'tag' | 'user',
  filter: Filter,
  direction: 'ASC' | 'DESC',
  size: number,
) {
  const effective = {
    ...filter,
    ...(via === 'tag' ? { tag: 'red' } : {}),
    ...(via === 'user' ? { authorId: alice.id } : {}),
  };
  const want = await expected(viewer, effective, direction);
  const label = `${viewer} ${via} ${JSON.stringify(filter)} ${direction} by ${size}`;
  const forward: string[] = [];
  let after: string | undefined;
  for (let guard = 0; guard < 100; guard++) {
    const got = await page(viewer, via, filter, direction, { first: size, after });
    expect(got.totalCount, label).toBe(want.length);
    const titles = got.edges.map((edge) => edge.node.title);
    expect(titles, `${label} after ${forward.length}`).toEqual(
      want.slice(forward.length, forward.length + size),
    );
    forward.push(...titles);
    expect(got.pageInfo.hasNextPage, `${label} next at ${forward.length}`).toBe(
      forward.length < want.length,
    );
    if (got.edges.length) expect(got.pageInfo.endCursor).toBe(got.edges.at(-1)!.cursor);
    if (!got.pageInfo.hasNextPage) break;
    after = got.pageInfo.endCursor!;
  }
  expect(forward, label).toEqual(want);
  const backward: string[] = [];
  let before: string | undefined;
  for (let guard = 0; guard < 100; guard++) {
    const got = await page(viewer, via, filter, direction, { last: size, before });
    const titles = got.edges.map((edge) => edge.node.title);
    const end = want.length - backward.length;
    expect(titles, `${label} before ${backward.length}`).toEqual(
      want.slice(Math.max(0, end - size), end),
    );
    backward.unshift(...titles);
    expect(got.pageInfo.hasPreviousPage, `${label} previous at ${backward.length}`).toBe(
      backward.length < want.length,
    );
    if (!got.pageInfo.hasPreviousPage) break;
    before = got.pageInfo.startCursor!;
  }
  expect(backward, label).toEqual(want);
  // A cursor from the middle of one walk, used for the other direction.
  if (want.length > 2 * size) {
    const first = await page(viewer, via, filter, direction, { first: size });
    const back = await page(viewer, via, filter, direction, {
      last: size,
      before: first.edges.at(-1)!.cursor,
    });
    expect(
      back.edges.map((edge) => edge.node.title),
      label,
    ).toEqual(want.slice(0, size - 1));
    expect(back.pageInfo.hasPreviousPage, label).toBe(false);
  }
}

const viewers: Viewer[] = ['alice', 'anonymous', 'editor'];

describe('merged walks against a brute force', () => {
  for (const viewer of viewers) {
    it(`${viewer}: root lists, every filter, both directions, cursors page to page`, async () => {
      const filters: Filter[] = [
        {},
        { tag: 'red' },
        { tag: 'blue' },
        { status: 'DRAFT' },
        { status: 'PUBLISHED' },
        { search: 'server' },
        { tag: 'red', search: 'server' },
      ];
      filters.push(
        { authorId: alice.id },
        { authorId: bob.id },
        { authorId: alice.id, tag: 'red' },
      );
      for (const filter of filters) {
        for (const direction of ['DESC', 'ASC'] as const) {
          await walkAll(viewer, 'root', filter, direction, 4);
        }
      }
      await walkAll(viewer, 'root', {}, 'DESC', 1);
      await walkAll(viewer, 'root', {}, 'ASC', 7);
    }, 60_000);

    it(`${viewer}: a tag's node and a user's node`, async () => {
      for (const direction of ['DESC', 'ASC'] as const) {
        await walkAll(viewer, 'tag', {}, direction, 3);
        await walkAll(viewer, 'tag', { authorId: bob.id }, direction, 3);
        await walkAll(viewer, 'tag', { status: 'REVIEW' }, direction, 3);
        await walkAll(viewer, 'user', {}, direction, 3);
        await walkAll(viewer, 'user', { tag: 'blue' }, direction, 2);
      }
    }, 60_000);
  }

  it("never shows Alice another author's draft: node, nodes, search, counts", async () => {
    const { rows: hidden } = await sql<{ id: string; title: string }>`
      select id, title from posts where status <> 'PUBLISHED' and author_id <> ${alice.id}`.execute(
      app.deps.db,
    );
    expect(hidden.length).toBeGreaterThan(5);
    const ids = hidden.map((row) => globalId('Post', row.id));
    const nodes = await app.gql(
      'query ($ids: [ID!]!, $one: ID!) { nodes(ids: $ids) { id } node(id: $one) { id } }',
      { ids, one: ids[0] },
      { token: alice.token },
    );
    expect(nodes.data?.nodes).toEqual(ids.map(() => null));
    expect(nodes.data?.node).toBeNull();
    const search = await app.gql(
      '{ searchPosts(query: "server garden", first: 100) { totalCount edges { node { title } } } }',
      {},
      { token: alice.token },
    );
    const hiddenTitles = new Set(hidden.map((row) => row.title));
    const seen = JSON.stringify(search);
    for (const title of hiddenTitles) expect(seen).not.toContain(`"${title}"`);
    const bobProfile = await app.gql(
      'query ($id: ID!) { node(id: $id) { ... on User { postCount posts(first: 100) { totalCount edges { node { title } } } } } }',
      { id: bob.globalId },
      { token: alice.token },
    );
    const { rows: bobPublished } = await sql<{ count: string }>`
      select count(*) from posts where author_id = ${bob.id} and status = 'PUBLISHED'`.execute(
      app.deps.db,
    );
    expect(bobProfile.data?.node.postCount).toBe(Number(bobPublished[0]!.count));
    expect(bobProfile.data?.node.posts.totalCount).toBe(Number(bobPublished[0]!.count));
  }, 30_000);

  it('the title order (one walk, not merged) for every viewer, both ways', async () => {
    orderField = 'TITLE';
    try {
      for (const viewer of viewers) {
        for (const direction of ['ASC', 'DESC'] as const) {
          await walkAll(viewer, 'root', {}, direction, 5);
          await walkAll(viewer, 'root', { tag: 'red' }, direction, 5);
        }
      }
    } finally {
      orderField = 'CREATED_AT';
    }
  }, 60_000);

  it("a cursor from Alice's draft, used by anonymous and the editor, pages their own lists", async () => {
    const { rows } = await sql<{ title: string; created_at: Date; id: string }>`
      select title, created_at, id from posts
      where author_id = ${alice.id} and status <> 'PUBLISHED' order by id limit 1`.execute(
      app.deps.db,
    );
    const draft = rows[0]!;
    const own = await page('alice', 'root', {}, 'DESC', { first: 100 });
    const cursor = own.edges.find((edge) => edge.node.title === draft.title)!.cursor;
    for (const viewer of ['anonymous', 'editor'] as const) {
      const want = await expected(viewer, {}, 'DESC');
      const { rows: position } = await sql<{ title: string }>`
        select title from posts where (created_at, id) < (${draft.created_at}, ${draft.id})`.execute(
        app.deps.db,
      );
      const after = new Set(position.map((row) => row.title));
      const got = await page(viewer, 'root', {}, 'DESC', { first: 4, after: cursor });
      expect(
        got.edges.map((edge) => edge.node.title),
        viewer,
      ).toEqual(want.filter((title) => after.has(title)).slice(0, 4));
      expect(JSON.stringify(got), viewer).not.toContain(`"${draft.title}"`);
    }
  });

  it('postCount and totalCount of each profile count what each viewer may see', async () => {
    const profile =
      'query ($id: ID!) { node(id: $id) { ... on User { postCount posts { totalCount } } } }';
    for (const viewer of viewers) {
      for (const user of [alice, bob]) {
        const want = (await expected(viewer, { authorId: user.id }, 'DESC')).length;
        const result = await app.gql(profile, { id: user.globalId }, { token: tokenOf(viewer) });
        expect(result.errors).toBeUndefined();
        const label = `${viewer} on ${user === alice ? 'alice' : 'bob'}`;
        expect(result.data!.node.postCount, label).toBe(want);
        expect(result.data!.node.posts.totalCount, label).toBe(want);
      }
    }
  });
});
