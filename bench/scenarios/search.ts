import { type Bench, checkOnce, header, log, row, rssMegabytes, timing } from '../harness.ts';
import { measure } from '../load.ts';

/** (d): full-text search on Quire, uncached and cached; PostGraphile v4 has none to compare. */
export async function measureSearch({ contenders }: Bench): Promise<void> {
  log('## (d) search\n');
  log(header);
  const search = JSON.stringify({
    query:
      '{ searchPosts(query: "graphql pipeline", first: 20) { totalCount edges { node { title } } } }',
  });
  for (const name of ['Quire', 'Quire + Redis cache (warm)']) {
    const contender = contenders[name]!;
    await checkOnce({ url: contender.url, body: search }, `${name} search`);
    const measured = await measure(
      { url: contender.url, body: search },
      { ...timing, counter: contender.counter },
    );
    log(row(name, measured, rssMegabytes(contender.pid)));
  }
  log(
    '\nPostGraphile is not measured here: v4 out of the box has no full-text search. Its `condition` argument tests columns for equality only; matching the `search` tsvector takes a plugin (e.g. `postgraphile-plugin-fulltext-filter`) or a custom SQL function, and a different query would not be a like-for-like comparison.\n',
  );
}
