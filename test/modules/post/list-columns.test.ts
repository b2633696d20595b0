import {
  type GraphQLField,
  type GraphQLObjectType,
  getNamedType,
  isLeafType,
  isObjectType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../../src/schema.ts';
import { type GraphQLResponse, startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';

/**
 * Post lists select only the columns their selection reads (bench/analysis.md, issue 12, list
 * columns): every field still answers from such a row what it answers from a whole one.
 */
let app: TestApp;
let writer: TestUser;
let editor: TestUser;
let admin: TestUser;
let tagId: string;
let postIds: string[];

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const { db } = app.deps;
  writer = await createUser(db, 'AUTHOR', 'Column Writer');
  editor = await createUser(db, 'EDITOR', 'Column Editor');
  admin = await createUser(db, 'ADMIN', 'Column Admin');
  const posts = await createPosts(db, [
    { authorId: writer.id, title: 'Columns one', createdAt: '2030-01-01T00:00:00Z' },
    { authorId: editor.id, title: 'Columns two', createdAt: '2030-01-01T00:01:00Z' },
  ]);
  postIds = posts.map((post) => post.id);
  // Every nullable column holds a value, so a column left out would show as a null.
  await db
    .updateTable('posts')
    .set({
      summary: 'A summary',
      meta_description: 'A description',
      keywords: ['alpha', 'beta'],
      word_count: 120,
      reading_minutes: 1,
      readability_score: 61.5,
      seo_score: 80,
      updated_at: '2030-02-01T00:00:00Z',
    })
    .where('id', 'in', postIds)
    .execute();
  ({ id: tagId } = await db
    .insertInto('tags')
    .values({ name: 'columns' })
    .returning('id')
    .executeTakeFirstOrThrow());
  await db
    .insertInto('post_tags')
    .values(postIds.map((post_id) => ({ post_id, tag_id: tagId })))
    .execute();
  await db
    .insertInto('comments')
    .values({ post_id: postIds[0]!, author_id: editor.id, body: 'A comment' })
    .execute();
});

afterAll(() => app?.close());

async function run(query: string, token?: string) {
  const result = await app.gql(query, {}, { debug: true, token });
  expect(result.errors).toBeUndefined();
  return {
    data: result.data!,
    // Shown to an ADMIN only (src/infra/sql-debug.ts).
    statements: ((result.extensions?.sql.statements ?? []) as { sql: string }[]).map(
      (statement) => statement.sql,
    ),
  };
}

/** What a field is selected as: a leaf alone, an object by what it reads of its parent. */
function selectionOf(field: GraphQLField<unknown, unknown>): string {
  const type = getNamedType(field.type);
  if (isLeafType(type)) return field.name;
  const fields = (type as GraphQLObjectType).getFields();
  return `${field.name} { ${'totalCount' in fields ? 'totalCount' : 'id'} }`;
}

const postType = schema.getType('Post');
const userType = schema.getType('User');
if (!isObjectType(postType) || !isObjectType(userType)) throw new Error('no Post or User type');

/** Each Post field on its own, `author` once per User field. */
const selections = Object.values(postType.getFields()).flatMap((field) =>
  field.name === 'author'
    ? Object.values(userType.getFields()).map((userField) => `author { ${selectionOf(userField)} }`)
    : [selectionOf(field)],
);

/** The same posts through each way of listing them, with `selection` on every node. */
const lists = (selection: string) => ({
  posts: `{ posts(first: 10) { edges { node { id ${selection} } } } }`,
  tagFilter: `{ posts(first: 10, filter: { tag: "columns" }) { edges { node { id ${selection} } } } }`,
  tagPosts: `{ node(id: "${globalId('Tag', tagId)}") { ... on Tag { posts(first: 10) { edges { node { id ${selection} } } } } } }`,
});

const nodesOf = (data: Record<string, any>) => {
  const connection = data.posts ?? data.node.posts;
  return connection.edges.map((edge: { node: unknown }) => edge.node);
};

describe('post lists', () => {
  it('select the columns their selection reads, and the order’s column for cursors', async () => {
    const { statements } = await run(
      '{ posts(first: 2) { edges { node { id title } } } }',
      admin.token,
    );
    // The admin's token is looked up first.
    expect(statements.at(-1)).toMatch(
      /^select "posts"\."id", "posts"\."title", "posts"\."created_at" from /,
    );
    const tagPage = await run(
      '{ posts(first: 2, filter: { tag: "columns" }) { edges { node { title author { name } } } } }',
      admin.token,
    );
    expect(tagPage.statements.at(-1)).toMatch(
      /^select "posts"\."id", "posts"\."author_id", "posts"\."title", "posts"\."created_at", "users"\."name" as "author_name" from /,
    );
  });

  it('answer every Post field as the post loaded by id does, for each viewer', async () => {
    expect(selections.length).toBeGreaterThan(20);
    /**
     * Error codes by the path below the post: a field refused to this viewer is refused alike (a
     * list's page is nulled at its first refusal, so each refusal counts once).
     */
    const refusals = (errors: GraphQLResponse['errors'], below: (path: unknown[]) => unknown[]) => [
      ...new Set(
        (errors ?? []).map((error) => `${error.extensions?.code} ${below(error.path!).join('.')}`),
      ),
    ];
    for (const token of [undefined, writer.token, editor.token]) {
      for (const selection of selections) {
        const loaded = await app.gql(
          `{ nodes(ids: ${JSON.stringify(postIds.map((id) => globalId('Post', id)))}) { ... on Post { id ${selection} } } }`,
          {},
          { token },
        );
        // A refused field nulls its post (and a list's page): then the refusals are compared.
        const byId = new Map<string, unknown>(
          loaded.data?.nodes.flatMap((node: { id: string } | null) =>
            node ? [[node.id, node]] : [],
          ),
        );
        for (const [list, query] of Object.entries(lists(selection))) {
          const label = `${list}: ${selection}`;
          const listed = await app.gql(query, {}, { token });
          expect(
            refusals(listed.errors, (path) => path.slice(path.lastIndexOf('node') + 1)),
            label,
          ).toEqual(refusals(loaded.errors, (path) => path.slice(2)));
          if (loaded.errors) continue;
          const nodes = nodesOf(listed.data!);
          expect(nodes, label).toHaveLength(2);
          for (const node of nodes) expect(node, label).toEqual(byId.get(node.id));
        }
      }
    }
  });

  it('page on from a cursor of a list that selected ids only, in every order', async () => {
    for (const field of ['CREATED_AT', 'UPDATED_AT', 'PUBLISHED_AT', 'TITLE']) {
      const page = (after: string) =>
        `{ posts(first: 1, orderBy: { field: ${field}, direction: ASC }${after}) { edges { cursor node { id } } } }`;
      const first = (await run(page(''))).data.posts.edges;
      const second = (await run(page(`, after: "${first[0].cursor}"`))).data.posts.edges;
      expect(second).toHaveLength(1);
      expect(second[0].node.id).not.toBe(first[0].node.id);
    }
  });
});
