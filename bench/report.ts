import { readFileSync } from 'node:fs';
import os from 'node:os';
import {
  autocannonVersion,
  commands,
  loadAverage,
  log,
  onlyFanout,
  onlyShapes,
  ratio,
  rounds,
  runBudgetMs,
  runStartedAt,
  smoke,
  timing,
  writeConnections,
} from './harness.ts';
import type { Measurement } from './load.ts';
import { fanoutMethod } from './scenarios/fanout-table.ts';

/** The report's title, machine, load average and command line. */
export function logPreamble(): void {
  log(
    `# Benchmarks${smoke ? ' (smoke run: tiny data, 1 s runs; not the published figures)' : ''}\n`,
  );
  log(
    `Measured ${new Date().toISOString()} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average at the start ${loadAverage()} (1 / 5 / 15 min: other work on the machine skews every figure).`,
  );
  if (onlyShapes)
    log(
      `Command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\` — the everyday-shapes table alone, with uncached Quire, Quire + Redis cache, PostGraphile and hello-world yoga. The machine is shared and noisy: compare ratios within this file, not absolute numbers across runs.\n`,
    );
  else if (onlyFanout)
    log(
      `Command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\` — the fan-out table alone, no other contender. The machine is shared and noisy: compare figures within this file, not absolute numbers across runs.\n`,
    );
  else
    log(
      `Command: \`npm run bench${smoke ? ' -- --smoke' : ''}\` — every contender runs at once against the same database, measured one after another in this run; ${timing.connections} connections, ${timing.warmupSeconds} s warm-up, ${timing.seconds} s measured per line; (a) and (b) in ${rounds} round${rounds > 1 ? 's (contenders in forward, then reverse order; the mean is shown)' : ''}. The machine is shared and noisy: compare ratios within this file, not absolute numbers across runs.\n`,
    );
}

/** The targets table: each target of the README with its measured figure, met or missed. */
export function logTargets(
  results: Record<string, Record<string, Measurement>>,
  { first: firstPage, deep: deepPage }: { first: Measurement; deep: Measurement },
  report: { rowsPerSecond: number },
): void {
  log('## Targets\n');
  const b = results['(b) 50 posts, author, tags, 5 comments with authors']!;
  const a = results['(a) post by id with author']!;
  const targets: [string, string, boolean | null][] = [
    [
      '(b) SQL statements per request ≤ 5 (list levels)',
      `${b.Quire?.statementsPerRequest?.toFixed(2)}`,
      (b.Quire?.statementsPerRequest ?? 99) <= 5,
    ],
    [
      '(b) naive variant ≥ 250 statements per request',
      `${b['Naive (LOADER_BATCHING=off)']?.statementsPerRequest?.toFixed(1)}`,
      (b['Naive (LOADER_BATCHING=off)']?.statementsPerRequest ?? 0) >= 250,
    ],
    [
      '(b) throughput ≥ 10× naive',
      ratio(b.Quire!.requestsPerSecond, b['Naive (LOADER_BATCHING=off)']!.requestsPerSecond),
      b.Quire!.requestsPerSecond >= 10 * b['Naive (LOADER_BATCHING=off)']!.requestsPerSecond,
    ],
    [
      '(b) uncached ≥ 1.0× PostGraphile',
      b.PostGraphile
        ? ratio(b.Quire!.requestsPerSecond, b.PostGraphile.requestsPerSecond)
        : 'not run',
      b.PostGraphile ? b.Quire!.requestsPerSecond >= b.PostGraphile.requestsPerSecond : null,
    ],
    [
      '(b) warm cache ≥ 3× PostGraphile',
      b.PostGraphile
        ? ratio(
            b['Quire + Redis cache (warm)']!.requestsPerSecond,
            b.PostGraphile.requestsPerSecond,
          )
        : 'not run',
      b.PostGraphile
        ? b['Quire + Redis cache (warm)']!.requestsPerSecond >= 3 * b.PostGraphile.requestsPerSecond
        : null,
    ],
    [
      '(c) deep-page p50 within 1.2× of first page',
      `${deepPage.p50} vs ${firstPage.p50} ms (${ratio(deepPage.p50, firstPage.p50)})`,
      deepPage.p50 <= 1.2 * firstPage.p50 + 1,
    ],
    [
      '(a) cached ≥ 50% of hello-world',
      ratio(
        a['Quire + Redis cache (warm)']!.requestsPerSecond,
        a['hello-world yoga']!.requestsPerSecond,
      ),
      a['Quire + Redis cache (warm)']!.requestsPerSecond >=
        0.5 * a['hello-world yoga']!.requestsPerSecond,
    ],
    [
      'bulk load ≥ 50,000 rows/s',
      report.rowsPerSecond.toLocaleString('en'),
      report.rowsPerSecond >= 50_000,
    ],
  ];
  log('| target | measured | |\n|---|---|---|');
  for (const [name, measured, met] of targets)
    log(`| ${name} | ${measured} | ${met === null ? 'not run' : met ? 'met' : '**missed**'} |`);
  log('');
}

/** How each process was started and loaded, the run time, then bench/analysis.md. */
export function logMethod(): void {
  log('## How it was run\n');
  log(
    `Each contender below also has a twin started with the same line but \`DATABASE_URL\` pointing at a statement-counting proxy (\`bench/pg-counting-proxy.ts\`); only the twin's statements are counted, the load goes to the line shown. Each process also inherits the harness's environment, with \`HOST=127.0.0.1\`.\n`,
  );
  log('| process | command line |\n|---|---|');
  for (const [label, command] of commands) log(`| ${label} | ${command} |`);
  log(
    `\nLoad generator: autocannon ${autocannonVersion} in the harness's process, on loopback, HTTP/1.1 keep-alive, no pipelining: \`autocannon({ url, connections: ${timing.connections}, duration: ${timing.seconds}, requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body }] })\` after a ${timing.warmupSeconds} s warm-up run of the same (the CLI equivalent: \`npx autocannon -c ${timing.connections} -d ${timing.seconds} -m POST -H 'content-type: application/json' -b '<body>' <url>\`). (e) runs createPost on ${writeConnections} connections alongside (a) reads on ${timing.connections}, both for ${timing.seconds} s with no warm-up; each createPost body is generated per request (\`setupRequest\`). SQL statements per request: 20 sequential requests to the twin after the load. ${fanoutMethod()}\n`,
  );
  const elapsedSeconds = Math.round((Date.now() - runStartedAt) / 1000);
  log(
    `Run time: ${Math.floor(elapsedSeconds / 60)} min ${elapsedSeconds % 60} s from the start to this report (budget ${runBudgetMs / 60_000} min; stopping the processes and dropping the database follow). Load average at the end, this run's own load included: ${loadAverage()}.\n`,
  );
  // What bounds the results, from profiles and EXPLAIN taken while building this harness.
  log(readFileSync(new URL('./analysis.md', import.meta.url), 'utf8'));
}
