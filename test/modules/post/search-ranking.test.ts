import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser } from '../../helpers/factories.ts';

let app: TestApp;

const search = `query($q: String!, $first: Int, $after: String) {
  searchPosts(query: $q, first: $first, after: $after) {
    totalCount edges { node { title } } pageInfo { hasNextPage endCursor } } }`;

const titles = (result: { data?: any }) =>
  result.data!.searchPosts.edges.map((edge: { node: { title: string } }) => edge.node.title);

beforeAll(async () => {
  app = await startTestApp({ CACHE: 'off' });
  const author = await createUser(app.deps.db, 'AUTHOR');
  // Best match first, so that id order (the order of equal ranks) is the reverse of relevance.
  await createPosts(app.deps.db, [
    {
      authorId: author.id,
      title: 'GraphQL schema design with GraphQL',
      body: 'GraphQL types, GraphQL fields and GraphQL resolvers.',
    },
    { authorId: author.id, title: 'GraphQL clients', body: 'Caching on the client side.' },
    {
      authorId: author.id,
      title: 'Weekly notes',
      body: 'Gardening, cooking, a long walk, a film, and a short mention of graphql at the end.',
    },
    { authorId: author.id, title: 'GraphQL server tuning', body: 'A GraphQL server under load.' },
  ]);
});

afterAll(() => app?.close());

describe('searchPosts with a negated word', () => {
  it('excludes its matches and ranks the rest by the words to find, best first', async () => {
    const ranked = ['GraphQL schema design with GraphQL', 'GraphQL clients', 'Weekly notes'];
    const plain = await app.gql(search, { q: 'graphql', first: 10 });
    expect(plain.errors).toBeUndefined();
    expect(titles(plain).filter((title: string) => !title.includes('server'))).toEqual(ranked);

    const negated = await app.gql(search, { q: 'graphql -server', first: 10 });
    expect(negated.errors).toBeUndefined();
    expect(negated.data!.searchPosts.totalCount).toBe(3);
    expect(titles(negated)).toEqual(ranked);

    // The keyset pages follow the same order.
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 3; page++) {
      const result = await app.gql(search, { q: 'graphql -server', first: 1, after });
      expect(result.errors).toBeUndefined();
      seen.push(...titles(result));
      after = result.data!.searchPosts.pageInfo.endCursor;
      expect(result.data!.searchPosts.pageInfo.hasNextPage).toBe(page < 2);
    }
    expect(seen).toEqual(ranked);
  });

  it('answers a query of negated words only, every match ranked alike (highest id first)', async () => {
    const result = await app.gql(search, { q: '-server', first: 10 });
    expect(result.errors).toBeUndefined();
    expect(titles(result)).toEqual([
      'Weekly notes',
      'GraphQL clients',
      'GraphQL schema design with GraphQL',
    ]);
  });
});
