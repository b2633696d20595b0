import {
  type Bench,
  checkOnce,
  combine,
  header,
  log,
  quireSqlCount,
  ratio,
  rounds,
  row,
  rssMegabytes,
  timing,
} from '../harness.ts';
import { type Measurement, measure, type StatementCounter, type Workload } from '../load.ts';

/** A query's text for a contender (by its table name), null where the contender does not run it. */
export type Queries = Record<string, (name: string) => string | null>;

/** (b) in Quire's schema: 50 posts, each with author, tags and 5 comments with their authors. */
export const quireNested =
  '{ posts(first: 50) { edges { node { title author { name } tags { name } comments(first: 5) { edges { node { body author { name } } } } } } } }';
/** (b) in PostGraphile's schema: the same posts (published, newest first) and fields. */
const postgraphileNested =
  '{ allPosts(first: 50, orderBy: CREATED_AT_DESC, condition: { status: "PUBLISHED" }) { nodes { title userByAuthorId { name } postTagsByPostId { nodes { tagByTagId { name } } } commentsByPostId(first: 5, orderBy: CREATED_AT_DESC) { nodes { body userByAuthorId { name } } } } } }';
/** (a) a post by id with its author, and (b); PostGraphile addresses the post by its raw id. */
export function sideBySideQueries(bench: Pick<Bench, 'samplePostId' | 'postGlobalId'>): Queries {
  return {
    '(a) post by id with author': (name) =>
      name === 'PostGraphile'
        ? `{ postById(id: "${bench.samplePostId}") { title userByAuthorId { name } } }`
        : `{ post(id: "${bench.postGlobalId}") { title author { name } } }`,
    '(b) 50 posts, author, tags, 5 comments with authors': (name) =>
      name === 'PostGraphile' ? postgraphileNested : quireNested,
  };
}

/**
 * (a) and (b): every contender in turn, forward then backward over the rounds; hello-world yoga
 * joins (a) as the ceiling. Returns each query's combined measurement by contender name.
 */
export async function measureSideBySide(
  bench: Bench,
  queries: Queries,
): Promise<Record<string, Record<string, Measurement>>> {
  const { contenders, hello } = bench;
  const results: Record<string, Record<string, Measurement>> = {};
  for (const [query, bodyFor] of Object.entries(queries)) {
    log(`## ${query}\n`);
    log(header);
    results[query] = {};
    const entries: {
      name: string;
      label: string;
      workload: Workload;
      counter?: StatementCounter;
      pid?: number;
    }[] = [];
    for (const [name, contender] of Object.entries(contenders)) {
      const text = bodyFor(name);
      if (!text) continue;
      const workload = { url: contender.url, body: JSON.stringify({ query: text }) };
      await checkOnce(workload, `${name} ${query}`);
      entries.push({ name, label: name, workload, counter: contender.counter, pid: contender.pid });
    }
    if (query.startsWith('(a)')) {
      entries.push({
        name: 'hello-world yoga',
        label: 'hello-world yoga (ceiling)',
        workload: { url: hello.url, body: JSON.stringify({ query: '{ hello }' }) },
        pid: hello.child.pid,
      });
    }
    // Forward, then backward: a contender measured while the machine drifts is not always the
    // one measured last. The statements are counted once, after the final round.
    const runs = new Map<string, Measurement[]>();
    for (let round = 0; round < rounds; round += 1) {
      for (const entry of round % 2 === 0 ? entries : [...entries].reverse()) {
        const last = round === rounds - 1;
        const measured = await measure(entry.workload, {
          ...timing,
          counter: last ? entry.counter : undefined,
        });
        runs.set(entry.name, [...(runs.get(entry.name) ?? []), measured]);
      }
    }
    for (const entry of entries) {
      const combined = combine(runs.get(entry.name)!);
      results[query][entry.name] = combined;
      log(row(entry.label, combined, rssMegabytes(entry.pid)));
    }
    const quire = contenders.Quire!;
    const measuredHere = results[query]!;
    const base = measuredHere.Quire!.requestsPerSecond;
    const versus = Object.entries(measuredHere)
      .filter(([name]) => name !== 'Quire')
      .map(([name, other]) => `${name} ${ratio(base, other.requestsPerSecond)}`);
    log(`\nQuire's throughput relative to: ${versus.join('; ')}.`);
    log(
      `\nQuire's own counter for one request (\`x-quire-debug: 1\`): ${await quireSqlCount({ url: quire.url, body: JSON.stringify({ query: bodyFor('Quire') }) })} statements.\n`,
    );
  }
  return results;
}
