import { encodeCursor } from '../../src/db/keyset.ts';
import { postOrder } from '../../src/modules/post/post.repository.ts';
import {
  type Bench,
  checkOnce,
  header,
  log,
  ratio,
  request,
  row,
  rssMegabytes,
  size,
  timing,
} from '../harness.ts';
import { type Measurement, measure } from '../load.ts';

/** (c): Quire's and PostGraphile's first page and the page after a cursor deep in the list. */
export async function measureDeepPage(
  bench: Bench,
): Promise<{ first: Measurement; deep: Measurement }> {
  const { db, contenders } = bench;
  const deepOffset = Math.min(50_000, Math.floor(size.posts * 0.7) - 60);
  const deepRow = await db
    .selectFrom('posts')
    .select(['id', 'created_at'])
    .where('status', '=', 'PUBLISHED')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .offset(deepOffset)
    .limit(1)
    .executeTakeFirstOrThrow();
  const deepCursor = encodeCursor(postOrder('CREATED_AT', 'DESC'), deepRow.created_at, deepRow.id);
  log(
    `## (c) deep page: 50 posts after a cursor ${deepOffset.toLocaleString('en')} rows in, vs the first page\n`,
  );
  log(header);
  const quirePage = (after: string | null) =>
    JSON.stringify({
      query:
        'query($after: String) { posts(first: 50, after: $after) { edges { node { title } } pageInfo { endCursor } } }',
      variables: { after },
    });
  // The same order and filter as Quire's `posts`; PostGraphile encodes its own cursors.
  const postgraphileOrder =
    'orderBy: [CREATED_AT_DESC, ID_DESC], condition: { status: "PUBLISHED" }';
  const postgraphilePage = (after: string | null) =>
    JSON.stringify({
      query: `query($after: Cursor) { allPosts(first: 50, after: $after, ${postgraphileOrder}) { nodes { title } pageInfo { endCursor } } }`,
      variables: { after },
    });
  const pages: { name: string; first: string; deep: string }[] = [
    { name: 'Quire', first: quirePage(null), deep: quirePage(deepCursor) },
  ];
  if (contenders.PostGraphile) {
    // Its cursor of the same row, found once with OFFSET (not part of the measurement).
    const found = await request<{
      allPosts: { edges: { cursor: string; node: { id: string } }[] };
    }>(
      {
        url: contenders.PostGraphile.url,
        body: JSON.stringify({
          query: `{ allPosts(first: 1, offset: ${deepOffset}, ${postgraphileOrder}) { edges { cursor node { id } } } }`,
        }),
      },
      'PostGraphile deep cursor',
    );
    const edge = found.allPosts.edges[0]!;
    if (edge.node.id !== String(deepRow.id))
      throw new Error(`PostGraphile's row ${deepOffset} is ${edge.node.id}, Quire's ${deepRow.id}`);
    pages.push({
      name: 'PostGraphile',
      first: postgraphilePage(null),
      deep: postgraphilePage(edge.cursor),
    });
  }
  const pageResults: Record<string, { first: Measurement; deep: Measurement }> = {};
  for (const { name, first, deep } of pages) {
    const contender = contenders[name]!;
    await checkOnce({ url: contender.url, body: deep }, `${name} deep page`);
    const firstMeasured = await measure(
      { url: contender.url, body: first },
      { ...timing, counter: contender.counter },
    );
    const deepMeasured = await measure(
      { url: contender.url, body: deep },
      { ...timing, counter: contender.counter },
    );
    pageResults[name] = { first: firstMeasured, deep: deepMeasured };
    log(row(`${name}, first page`, firstMeasured, rssMegabytes(contender.pid)));
    log(
      row(
        `${name}, page after row ${deepOffset.toLocaleString('en')}`,
        deepMeasured,
        rssMegabytes(contender.pid),
      ),
    );
  }
  const { first: firstPage, deep: deepPage } = pageResults.Quire!;
  log(
    `\nDeep-page p50 relative to the first page: ${Object.entries(pageResults)
      .map(([name, { first, deep }]) => `${name} ${ratio(deep.p50, first.p50)}`)
      .join('; ')}.`,
  );
  if (pageResults.PostGraphile)
    log(
      `Quire's throughput relative to PostGraphile: first page ${ratio(firstPage.requestsPerSecond, pageResults.PostGraphile.first.requestsPerSecond)}; deep page ${ratio(deepPage.requestsPerSecond, pageResults.PostGraphile.deep.requestsPerSecond)}.`,
    );
  log('');
  return pageResults.Quire!;
}
