import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, type TestUser } from '../../helpers/factories.ts';

/**
 * A signed-in member sees the published posts and their own (`status = 'PUBLISHED' or author_id
 * = $viewer`). With another author's drafts newer than every published post, one walk of the
 * posts in creation order stepped over all of them for every page, profile and count; the
 * statements must walk indexes that hold only what the viewer may see instead
 * (migrations/20261206000000_posts_author_status_created.ts, `mergesWalks` in
 * src/modules/post/post.repository.ts). The plans are the generic ones the prepared statements
 * run, as `x-quire-debug: explain` shows them (anyone, in development).
 */
let app: TestApp;
let drafty: TestUser;
let member: TestUser;
let mixed: TestUser;
const PUBLISHED = 20_000;
const DRAFTS = 5000;
const AUTHORS = 50;

beforeAll(async () => {
  app = await startTestApp({ NODE_ENV: 'development', CACHE: 'off' });
  const { db } = app.deps;
  drafty = await createUser(db, 'AUTHOR', 'Drafty');
  member = await createUser(db, 'AUTHOR', 'No drafts');
  mixed = await createUser(db, 'AUTHOR', 'Mixed');
  const writers = [];
  for (let index = 1; index < AUTHORS; index++) writers.push((await createUser(db)).id);
  // Every AUTHORS-th published post is Drafty's, the others spread over the other writers.
  await sql`
    insert into posts (author_id, title, slug, body, status, published_at, created_at, updated_at)
    select case when n % ${AUTHORS}::int = 0 then ${drafty.id}::bigint
      else (${writers}::bigint[])[n % ${AUTHORS}::int] end,
      'Published ' || n, 'published-' || n, 'a server', 'PUBLISHED',
      timestamptz '2020-01-01' + n * interval '1 minute',
      timestamptz '2020-01-01' + n * interval '1 minute', now()
    from generate_series(1, ${PUBLISHED}::int) n`.execute(db);
  await sql`
    insert into posts (author_id, title, slug, body, status, created_at, updated_at)
    select ${drafty.id}, 'Draft ' || n, 'draft-' || n, 'a server', 'DRAFT',
      timestamptz '2026-01-01' + n * interval '1 minute', now()
    from generate_series(1, ${DRAFTS}::int) n`.execute(db);
  // Mixed's own drafts and one in review, between the newest published posts.
  await sql`
    insert into posts (author_id, title, slug, body, status, created_at, updated_at)
    select ${mixed.id}, 'Mixed ' || n, 'mixed-' || n, 'x', case when n = 3 then 'REVIEW' else 'DRAFT' end,
      timestamptz '2020-01-01' + (${PUBLISHED}::int - n * 2) * interval '1 minute' + interval '30 seconds',
      now()
    from generate_series(1, 4) n`.execute(db);
  // `busy` labels every post, `quiet` every published one.
  await sql`insert into tags (name) values ('busy'), ('quiet')`.execute(db);
  await sql`
    insert into post_tags (post_id, tag_id)
    select posts.id, tags.id from posts join tags
      on tags.name = 'busy' or (tags.name = 'quiet' and posts.status = 'PUBLISHED')`.execute(db);
  // Vacuumed as a live table is, so counts may read the indexes alone.
  await sql`vacuum analyze posts`.execute(db);
  await sql`vacuum analyze post_tags`.execute(db);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

/** The request's answer and the generic plans of its statements reading `posts`. */
async function explained(query: string, token?: string) {
  const result = await app.gql(query, {}, { token, headers: { 'x-quire-debug': 'explain' } });
  expect(result.errors).toBeUndefined();
  const statements = result.extensions?.sql.statements as { sql: string; plan?: unknown }[];
  const plans = statements
    .filter((statement) => /"posts"/.test(statement.sql))
    .map((statement) => JSON.stringify(statement.plan));
  return { data: result.data!, plans };
}

const titles = (connection: { edges: { node: { title: string } }[] }) =>
  connection.edges.map((edge) => edge.node.title);

/** Titles of published posts, newest first, or Drafty's alone. */
const newestPublished = (count: number, by?: 'drafty') =>
  Array.from({ length: PUBLISHED }, (_, index) => PUBLISHED - index)
    .filter((n) => by !== 'drafty' || n % AUTHORS === 0)
    .slice(0, count)
    .map((n) => `Published ${n}`);

describe("a signed-in member's lists behind another author's newer drafts", () => {
  it('merges a walk of the published posts with a walk of their own others', async () => {
    const query = '{ posts(first: 10) { edges { node { title author { name } } } } }';
    const { data, plans } = await explained(query, member.token);
    expect(titles(data.posts)).toEqual(newestPublished(10));
    expect(plans).toHaveLength(1);
    expect(plans[0]).toContain('posts_published_created_idx');
    expect(plans[0]).toContain('posts_author_unpublished_created_idx');
    // Neither walk filters: each index holds exactly what its half may return.
    expect(plans[0]).not.toContain('"Filter"');
    const own = await explained(query, drafty.token);
    expect(titles(own.data.posts)).toEqual(
      Array.from({ length: 10 }, (_, index) => `Draft ${DRAFTS - index}`),
    );
  });

  it("walks a drafty author's published posts alone on their profile, for readers and members", async () => {
    const query = `{ node(id: "${drafty.globalId}") { ... on User { name
      posts(first: 10) { edges { node { title comments { totalCount } } } } } } }`;
    for (const token of [undefined, member.token]) {
      const { data, plans } = await explained(query, token);
      expect(titles(data.node.posts)).toEqual(newestPublished(10, 'drafty'));
      expect(plans).toHaveLength(1);
      expect(plans[0]).toContain('posts_author_published_created_idx');
      expect(plans[0]).not.toContain('posts_author_created_idx');
    }
  });

  it("counts a member's posts through the two indexes, not the whole table", async () => {
    const { data, plans } = await explained('{ posts(first: 1) { totalCount } }', member.token);
    expect(data.posts.totalCount).toBe(PUBLISHED);
    const count = plans.find((plan) => plan.includes('Aggregate'))!;
    expect(count).toContain('posts_author_unpublished_created_idx');
    expect(count).not.toContain('Seq Scan');
    const own = await app.gql('{ posts(first: 1) { totalCount } }', {}, { token: drafty.token });
    expect(own.data?.posts.totalCount).toBe(PUBLISHED + DRAFTS);
  });

  it("finds a member's newest search matches among the published posts and their own others", async () => {
    const query =
      '{ searchPosts(query: "server", first: 5) { totalCount edges { node { title } } } }';
    const { data, plans } = await explained(query, member.token);
    expect(data.searchPosts.totalCount).toBe(200);
    expect(plans).toHaveLength(1);
    expect(plans[0]).toContain('posts_author_unpublished_created_idx');
    const own = await explained(query, drafty.token);
    expect(own.data.searchPosts.totalCount).toBe(200);
  });

  it('pages a merged list forward and backward by cursor as the one condition orders it', async () => {
    const { rows } = await sql<{ title: string }>`
      select title from posts where status = 'PUBLISHED' or author_id = ${mixed.id}
      order by created_at desc, id desc limit 16`.execute(app.deps.db);
    const expected = rows.map((row) => row.title);
    expect(expected.filter((title) => title.startsWith('Mixed'))).toHaveLength(4);
    const page = (args: string) =>
      app.gql(
        `{ posts(${args}) { edges { node { title } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`,
        {},
        { token: mixed.token },
      );
    const seen: string[] = [];
    let after: string | null = null;
    for (let step = 0; step < 4; step++) {
      const result = await page(`first: 4${after ? `, after: "${after}"` : ''}`);
      expect(result.errors).toBeUndefined();
      seen.push(...titles(result.data!.posts));
      after = result.data!.posts.pageInfo.endCursor;
    }
    expect(seen).toEqual(expected);
    const back = await page(`last: 6, before: "${after}"`);
    expect(titles(back.data!.posts)).toEqual(expected.slice(9, 15));
    expect(back.data!.posts.pageInfo.hasPreviousPage).toBe(true);
  });

  it("walks a tag's published links, and a member's own unpublished ones, whoever reads", async () => {
    const page = (tag: string) =>
      `{ posts(first: 10, filter: { tag: "${tag}" }) { edges { node { title author { name } } } } }`;
    const reader = await explained(page('busy'));
    expect(titles(reader.data.posts)).toEqual(newestPublished(10));
    expect(reader.plans).toHaveLength(1);
    expect(reader.plans[0]).toContain('post_tags_tag_published_created_idx');
    expect(reader.plans[0]).not.toContain('post_tags_tag_created_idx');
    for (const token of [member.token, drafty.token]) {
      for (const tag of ['busy', 'quiet']) {
        const { data, plans } = await explained(page(tag), token);
        expect(titles(data.posts)).toEqual(
          token === drafty.token && tag === 'busy'
            ? Array.from({ length: 10 }, (_, index) => `Draft ${DRAFTS - index}`)
            : newestPublished(10),
        );
        expect(plans[0]).toContain('post_tags_tag_published_created_idx');
        expect(plans[0]).toContain('post_tags_tag_author_unpublished_created_idx');
      }
    }
    const tagId = await app.deps.db
      .selectFrom('tags')
      .select('id')
      .where('name', '=', 'busy')
      .executeTakeFirstOrThrow();
    const tagNode = `{ node(id: "${Buffer.from(`Tag:${tagId.id}`).toString('base64url')}") {
      ... on Tag { posts(first: 10) { edges { node { title } } } } } }`;
    const node = await explained(tagNode);
    expect(titles(node.data.node.posts)).toEqual(newestPublished(10));
    expect(node.plans.find((plan) => plan.includes('Limit'))).toContain(
      'post_tags_tag_published_created_idx',
    );
  });

  it("keeps each link's copy of its post's status and author as the post changes", async () => {
    const { db } = app.deps;
    const newest = `Draft ${DRAFTS}`;
    const page = '{ posts(first: 1, filter: { tag: "busy" }) { edges { node { title } } } }';
    await sql`update posts set status = 'PUBLISHED' where title = ${newest}`.execute(db);
    expect(titles((await app.gql(page)).data!.posts)).toEqual([newest]);
    await sql`update posts set author_id = ${member.id} where title = ${newest}`.execute(db);
    await sql`update posts set status = 'REVIEW' where title = ${newest}`.execute(db);
    expect(titles((await app.gql(page)).data!.posts)).toEqual(newestPublished(1));
    expect(titles((await app.gql(page, {}, { token: member.token })).data!.posts)).toEqual([
      newest,
    ]);
    const { rows } = await sql<{ stale: string }>`
      select count(*) as stale from post_tags join posts on posts.id = post_tags.post_id
      where post_tags.post_published <> (posts.status = 'PUBLISHED')
        or post_tags.post_author_id <> posts.author_id`.execute(db);
    expect(rows[0]!.stale).toBe('0');
    await sql`update posts set status = 'DRAFT', author_id = ${drafty.id} where title = ${newest}`.execute(
      db,
    );
  });
});
