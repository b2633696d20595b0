/**
 * A side-by-side probe of `searchPosts` over terms of every breadth: servers named on the command
 * line, all running at once, loaded in turn (autocannon) per term and per connection count, in
 * alternating order over several rounds. Anonymous, no cache; reports p50/p99 latency and req/s.
 *
 *   node --import tsx bench/probe-search.ts --seconds 4 --rounds 2 --connections 1,20 \
 *     main=/work/main@postgres://postgres@127.0.0.1:5432/quire_search_main \
 *     branch=.@postgres://postgres@127.0.0.1:5432/quire_search
 *
 * A contender is `name=<checkout>[@<database url>]` (DATABASE_URL when no url), started with
 * `CACHE=off WORKER=off` and unlimited search; the database needs `npm run seed -- --posts …`.
 * Each line gives the term's published matches, counted once before the load.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { startQuireCheckout } from './probe-server.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '1,20' },
    terms: { type: 'string' },
  },
});
const defaultDatabase =
  process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/quire_search';

/** Breadths over the seeded READMEs (100,000 posts); `--terms a|b|c` replaces them. */
const defaultTerms = [
  'graphql pipeline', // rare: both words
  'kysely', // rare (<1 %)
  'graphql', // ~6 %
  'server', // ~7 %
  'data', // ~10 %
  'support', // ~29 %
  'use', // ~66 %
  'use function', // two broad words
  '"return a promise"', // phrase of two common words
  'server -graphql', // negation
  'zzyzzx', // matches nothing
  'the of and', // stop words only
];
const terms = values.terms ? values.terms.split('|') : defaultTerms;

interface Contender {
  name: string;
  child: ChildProcess;
  url: string;
}

async function start(spec: string): Promise<Contender> {
  const [name, rest] = spec.split('=', 2) as [string, string];
  const at = rest.indexOf('@');
  const checkout = at < 0 ? rest : rest.slice(0, at);
  const databaseUrl = at < 0 ? undefined : rest.slice(at + 1);
  const { child, url } = await startQuireCheckout(checkout, {
    DATABASE_URL: databaseUrl ?? defaultDatabase,
    RATE_LIMIT_SEARCH: '100000000',
  });
  return { name, child, url };
}

const body = (term: string) =>
  JSON.stringify({
    query:
      'query($q: String!) { searchPosts(query: $q, first: 20) { totalCount edges { node { title } } } }',
    variables: { q: term },
  });

const load = (contender: Contender, term: string, connections: number, seconds: number) =>
  autocannon({
    url: contender.url,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body(term),
  });

const admin = new pg.Client({ connectionString: defaultDatabase });
await admin.connect();
const matches = new Map<string, number>();
for (const term of terms) {
  const { rows } = await admin.query<{ n: string }>(
    `select count(*) as n from posts
     where status = 'PUBLISHED' and search @@ websearch_to_tsquery('english', $1)`,
    [term],
  );
  matches.set(term, Number(rows[0]!.n));
}
await admin.end();

const contenders: Contender[] = [];
// Also on a failed check: no server outlives the probe.
process.on('exit', () => {
  for (const contender of contenders) contender.child.kill('SIGTERM');
});
for (const spec of positionals) contenders.push(await start(spec));
// A GraphQL error is a 200 response too: every contender answers every term once, checked.
for (const contender of contenders) {
  for (const term of terms) {
    const response = await fetch(contender.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(term),
    });
    const result = (await response.json()) as { errors?: unknown };
    if (result.errors)
      throw new Error(`${contender.name} ${term}: ${JSON.stringify(result.errors)}`);
  }
}
const connectionCounts = (values.connections ?? '1,20').split(',').map(Number);
const results = new Map<
  string,
  { p50: number[]; p99: number[]; rps: number[]; failures: number }
>();
console.log(`load average at start: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
for (let round = 0; round < Number(values.rounds); round++) {
  const order = round % 2 === 0 ? contenders : [...contenders].reverse();
  for (const term of terms) {
    for (const connections of connectionCounts) {
      for (const contender of order) {
        await load(contender, term, connections, Number(values.warmup));
        const result = await load(contender, term, connections, Number(values.seconds));
        const key = `${term}\t${connections}\t${contender.name}`;
        const entry = results.get(key) ?? { p50: [], p99: [], rps: [], failures: 0 };
        entry.p50.push(result.latency.p50);
        entry.p99.push(result.latency.p99);
        entry.rps.push(result.requests.average);
        entry.failures += result.non2xx + result.errors;
        results.set(key, entry);
      }
    }
  }
}
console.log(`load average at end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
console.log('term\tpublished matches\tconnections\tcontender\tp50 ms\tp99 ms\treq/s\tfailures');
for (const [key, entry] of results) {
  const [term] = key.split('\t') as [string];
  const [, connections, name] = key.split('\t');
  console.log(
    `${term}\t${matches.get(term)}\t${connections}\t${name}\t${median(entry.p50)}\t${median(entry.p99)}\t${median(entry.rps).toFixed(0)}\t${entry.failures}`,
  );
}
process.exit(0);
