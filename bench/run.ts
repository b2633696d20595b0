import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { createDatabase, createPool, type Db } from '../src/db/database.ts';
import { encodeCursor } from '../src/db/keyset.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { seed } from '../src/db/seed.ts';
import { createLogger } from '../src/infra/logger.ts';
import { insertToken } from '../src/modules/auth/auth.repository.ts';
import { postOrder } from '../src/modules/post/post.repository.ts';
import { type ServerProcess, startProcess } from '../test/helpers/processes.ts';
import { type FanoutTransport, subscribeMany } from './fanout.ts';
import { type Measurement, measure, type StatementCounter, type Workload } from './load.ts';
import { PgCountingProxy } from './pg-counting-proxy.ts';

/**
 * `npm run bench` (≈10 min) or `npm run bench -- --smoke` (seconds, for CI): seeds one database,
 * starts every contender against it, loads them side by side and writes docs/BENCHMARKS.md.
 * `npm run bench -- --only fanout` runs the fan-out table alone (no seed, no other contender) and
 * writes /tmp/quire-bench-fanout.md; with it, `--sizes 250,1000` and `--transports SSE` narrow
 * the table and `--profile <dir>` writes the API's CPU profile (node --cpu-prof) there.
 */
const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    keep: { type: 'boolean' },
    only: { type: 'string' },
    sizes: { type: 'string' },
    transports: { type: 'string' },
    profile: { type: 'string' },
  },
});
if (flags.only !== undefined && flags.only !== 'fanout')
  throw new Error(`--only takes "fanout", not "${flags.only}"`);
const onlyFanout = flags.only === 'fanout';
const smoke = flags.smoke ?? false;
const size = smoke
  ? { users: 200, posts: 2000, commentsPerPost: 3, tags: 20 }
  : { users: 10_000, posts: 100_000, commentsPerPost: 3, tags: 200 };
const timing = smoke
  ? { connections: 10, warmupSeconds: 0, seconds: 1 }
  : { connections: 20, warmupSeconds: 2, seconds: 8 };
const fanoutSizes = flags.sizes?.split(',').map(Number) ?? (smoke ? [20] : [250, 1000, 2000, 5000]);
const fanoutTransports = (flags.transports?.split(',') ?? [
  'SSE',
  'graphql-ws',
]) as FanoutTransport[];
/** How long one fan-out size may take from the worker's start to its last delivery. */
const fanoutDeadlineMs = smoke ? 15_000 : 60_000;
/** The whole run before cleanup (under 15 min with it); past it the run aborts, stopping everything it started. */
const runBudgetMs = smoke ? 180_000 : 14 * 60_000;
const runStartedAt = Date.now();
const autocannonVersion = (
  JSON.parse(
    readFileSync(new URL('../node_modules/autocannon/package.json', import.meta.url), 'utf8'),
  ) as { version: string }
).version;
/** (e): createPost connections, alongside reads on `timing.connections`. */
const writeConnections = Math.max(2, Math.round(timing.connections / 4));
/** Rounds of the side-by-side queries (a) and (b), alternating the order of the contenders. */
const rounds = smoke ? 1 : 2;
const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseName = `quire_bench${smoke ? '_smoke' : ''}${onlyFanout ? '_fanout' : ''}`;
const poolSize = '10';
/** Every Redis key this run writes is under this prefix; cleanUp deletes them. */
const redisPrefix = (role: string) => `quire-bench-${process.pid}-${role}:`;

const started: { stop(): Promise<unknown> }[] = [];
/** The command line of every measured process, for the report. */
const commands: [string, string][] = [];
const lines: string[] = [];
const log = (line: string) => {
  console.log(line);
  lines.push(line);
};

function databaseUrl(name: string, port?: number): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  if (port) url.port = String(port);
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

async function proxied(): Promise<PgCountingProxy> {
  const target = new URL(adminUrl);
  const proxy = new PgCountingProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  started.push(proxy);
  return proxy;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `ENV=… node --import tsx script`, as the process was started (on top of the inherited environment). */
function commandLine(script: string, env: Record<string, string>): string {
  const variables = Object.entries(env).map(([name, value]) =>
    name === 'PORT' ? 'PORT=<free port>' : `${name}=${value}`,
  );
  // The servers start as `npm start` does, with the tracing preload (idle without OTEL_*).
  const node = script.startsWith('src/')
    ? 'node --import tsx --import ./src/instrumentation.ts'
    : 'node --import tsx';
  return `\`${[...variables, node, script].join(' ')}\``;
}

/**
 * startProcess, tried twice: on a loaded shared machine a server can miss the helper's 20 s
 * start-up window (it kills that attempt) without anything being wrong with it.
 */
async function startTwice(
  entry: Parameters<typeof startProcess>[0],
  env: Record<string, string>,
): Promise<ServerProcess> {
  if (cleaning) throw new Error(`not starting ${entry}: the run is stopping`);
  try {
    return await startProcess(entry, env);
  } catch (error) {
    console.error(`${entry} did not start, trying once more:`, String(error).slice(0, 300));
    return startProcess(entry, env);
  }
}

async function spawn(
  entry: 'main' | 'worker',
  env: Record<string, string>,
  label?: string,
): Promise<ServerProcess> {
  const fullEnv = {
    // Quiet like PostGraphile's disableQueryLog: no per-request log line during the load.
    LOG_LEVEL: entry === 'main' ? 'warn' : 'info',
    PORT: String(await freePort()),
    DB_POOL_SIZE: poolSize,
    RATE_LIMIT_MUTATIONS: '100000000',
    RATE_LIMIT_SEARCH: '100000000',
    RATE_LIMIT_START_PIPELINE: '100000000',
    MIGRATE_ON_START: 'off',
    ...env,
  };
  const child = await startTwice(entry, fullEnv);
  started.push({ stop: () => child.stop('SIGKILL') });
  if (label) commands.push([label, commandLine(`src/${entry}.ts`, fullEnv)]);
  return child;
}

async function spawnScript(
  script: `${string}.ts`,
  env: Record<string, string>,
  label?: string,
): Promise<ServerProcess> {
  const child = await startTwice(script, env);
  started.push({ stop: () => child.stop('SIGKILL') });
  if (label) commands.push([label, commandLine(script, { PORT: '0', ...env })]);
  return child;
}

/** A contender's answer to one request, failing on HTTP or GraphQL errors. */
async function request<T>(workload: Workload, label: string): Promise<T> {
  const response = await fetch(workload.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...workload.headers },
    body: workload.body,
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (!response.ok || body.errors || !body.data)
    throw new Error(`${label} answered with errors: ${JSON.stringify(body).slice(0, 500)}`);
  return body.data;
}

function rssKibibytes(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

function rssMegabytes(pid: number | undefined): number {
  return Math.round(rssKibibytes(pid) / 1024);
}

/** A process's user + system CPU time so far (/proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMicroseconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function checkOnce(workload: Workload, label: string): Promise<void> {
  await request(workload, label);
}

async function quireSqlCount(workload: Workload): Promise<number> {
  const response = await fetch(workload.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-quire-debug': '1', ...workload.headers },
    body: workload.body,
  });
  return ((await response.json()) as { extensions: { sql: { queries: number } } }).extensions.sql
    .queries;
}

/** The mean of a contender's rounds; the statement count comes from the round that counted. */
function combine(measurements: Measurement[]): Measurement {
  const mean = (pick: (m: Measurement) => number) =>
    Math.round(measurements.reduce((sum, m) => sum + pick(m), 0) / measurements.length);
  return {
    requestsPerSecond: mean((m) => m.requestsPerSecond),
    p50: mean((m) => m.p50),
    p99: mean((m) => m.p99),
    requests: measurements.reduce((sum, m) => sum + m.requests, 0),
    failures: measurements.reduce((sum, m) => sum + m.failures, 0),
    statementsPerRequest:
      measurements.findLast((m) => m.statementsPerRequest !== null)?.statementsPerRequest ?? null,
  };
}

const row = (name: string, m: Measurement, rss?: number) =>
  `| ${name} | ${m.requestsPerSecond} | ${m.p50} | ${m.p99} | ${m.statementsPerRequest?.toFixed(2) ?? '—'} | ${rss ?? '—'} | ${m.failures} |`;
const header =
  '| contender | req/s | p50 ms | p99 ms | SQL statements / request | RSS MB | failures |\n|---|---|---|---|---|---|---|';
const loadAverage = () =>
  os
    .loadavg()
    .map((load) => load.toFixed(1))
    .join(' / ');
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

async function main(): Promise<void> {
  log(
    `# Benchmarks${smoke ? ' (smoke run: tiny data, 1 s runs; not the published figures)' : ''}\n`,
  );
  log(
    `Measured ${new Date().toISOString()} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average at the start ${loadAverage()} (1 / 5 / 15 min: other work on the machine skews every figure).`,
  );
  if (onlyFanout)
    log(
      `Command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\` — the fan-out table alone, no other contender. The machine is shared and noisy: compare figures within this file, not absolute numbers across runs.\n`,
    );
  else
    log(
      `Command: \`npm run bench${smoke ? ' -- --smoke' : ''}\` — every contender runs at once against the same database, measured one after another in this run; ${timing.connections} connections, ${timing.warmupSeconds} s warm-up, ${timing.seconds} s measured per line; (a) and (b) in ${rounds} round${rounds > 1 ? 's (contenders in forward, then reverse order; the mean is shown)' : ''}. The machine is shared and noisy: compare ratios within this file, not absolute numbers across runs.\n`,
    );

  await admin(`drop database if exists ${databaseName} with (force)`);
  await admin(`create database ${databaseName}`);
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: databaseUrl(databaseName),
    LOG_LEVEL: 'silent',
  });
  const db: Db = createDatabase(
    createPool(databaseUrl(databaseName), config),
    createLogger(config),
    config,
  );
  started.push({ stop: () => db.destroy() });
  await migrateToLatest(db);
  const { rows: versions } = await sql<{ version: string }>`select version()`.execute(db);
  log(`PostgreSQL: ${versions[0]?.version.split(',')[0]}.\n`);
  if (onlyFanout) {
    const author = await db
      .insertInto('users')
      .values({ email: 'bench@example.com', name: 'Bench', role: 'AUTHOR' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await measureFanout(db, author.id, (await insertToken(db, author.id, 'bench')).token);
    log('## How it was run\n');
    log('| process | command line |\n|---|---|');
    for (const [label, command] of commands) log(`| ${label} | ${command} |`);
    log(`\n${fanoutMethod()}\n`);
    log(`Load average at the end, this run's own load included: ${loadAverage()}.`);
    return;
  }
  const report = await seed(db, size);
  log('## Bulk load\n');
  log(
    `\`seed()\` (one INSERT … SELECT generate_series per table, inside Postgres): ${report.rows.toLocaleString('en')} rows (${size.users.toLocaleString('en')} users, ${size.posts.toLocaleString('en')} posts, ${(size.posts * size.commentsPerPost).toLocaleString('en')} comments, tags and links) in ${report.seconds.toFixed(1)} s = **${report.rowsPerSecond.toLocaleString('en')} rows/s** (target ≥ 50,000: ${report.rowsPerSecond >= 50_000 ? 'met' : 'missed'}). Includes building the full-text \`tsvector\` of every post and a final ANALYZE.\n`,
  );

  const author = await db
    .insertInto('users')
    .values({ email: 'bench@example.com', name: 'Bench', role: 'AUTHOR' })
    .returning('id')
    .executeTakeFirstOrThrow();
  const { token } = await insertToken(db, author.id, 'bench');
  const [samplePost] = await db
    .selectFrom('posts')
    .select('id')
    .where('status', '=', 'PUBLISHED')
    .orderBy('id')
    .limit(1)
    .execute();
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
  const postGlobalId = Buffer.from(`Post:${samplePost!.id}`).toString('base64url');

  const contenders: Record<string, { url: string; counter: StatementCounter; pid?: number }> = {};
  /** The contender on a direct connection (its command line recorded), and its twin behind a counting proxy. */
  const startWithCounter = async (
    name: string,
    start: (databaseUrl: string, label?: string) => Promise<ServerProcess>,
  ) => {
    const proxy = await proxied();
    const [server, twin] = await Promise.all([
      start(databaseUrl(databaseName), name),
      start(databaseUrl(databaseName, proxy.port)),
    ]);
    return { url: server.url, pid: server.child.pid, counter: { url: twin.url, proxy } };
  };
  const quireVariants: [string, Record<string, string>][] = [
    ['Quire', { CACHE: 'off' }],
    [
      'Quire + Redis cache (warm)',
      { CACHE: 'on', REDIS_URL: redisUrl, REDIS_PREFIX: redisPrefix('cache') },
    ],
    [
      'Quire + Redis, resolver cache only (warm)',
      {
        CACHE: 'on',
        RESPONSE_CACHE: 'off',
        REDIS_URL: redisUrl,
        REDIS_PREFIX: redisPrefix('resolver'),
      },
    ],
    ['Naive (LOADER_BATCHING=off)', { CACHE: 'off', LOADER_BATCHING: 'off' }],
  ];
  for (const [name, env] of quireVariants) {
    contenders[name] = await startWithCounter(name, (url, label) =>
      spawn('main', { ...env, WORKER: 'off', DATABASE_URL: url }, label),
    );
  }
  if (!smoke) {
    if (!existsSync(new URL('./postgraphile/node_modules', import.meta.url))) {
      // A contender with its own dependency tree: PostGraphile v4 needs graphql 15.
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefix', 'bench/postgraphile'], {
        stdio: 'inherit',
      });
    }
    contenders.PostGraphile = await startWithCounter('PostGraphile', (url, label) =>
      spawnScript(
        'bench/postgraphile/server.ts',
        { DATABASE_URL: url, DB_POOL_SIZE: poolSize },
        label,
      ),
    );
  }
  const hello = await spawnScript('bench/hello-server.ts', {}, 'hello-world yoga');

  const quireNested =
    '{ posts(first: 50) { edges { node { title author { name } tags { name } comments(first: 5) { edges { node { body author { name } } } } } } } }';
  const postgraphileNested =
    '{ allPosts(first: 50, orderBy: CREATED_AT_DESC, condition: { status: "PUBLISHED" }) { nodes { title userByAuthorId { name } postTagsByPostId { nodes { tagByTagId { name } } } commentsByPostId(first: 5, orderBy: CREATED_AT_DESC) { nodes { body userByAuthorId { name } } } } } }';
  const queries: Record<string, (name: string) => string | null> = {
    '(a) post by id with author': (name) =>
      name === 'PostGraphile'
        ? `{ postById(id: "${samplePost!.id}") { title userByAuthorId { name } } }`
        : `{ post(id: "${postGlobalId}") { title author { name } } }`,
    '(b) 50 posts, author, tags, 5 comments with authors': (name) =>
      name === 'PostGraphile' ? postgraphileNested : quireNested,
  };

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

  log(
    `## (c) deep page: 50 posts after a cursor ${deepOffset.toLocaleString('en')} rows in, vs the first page\n`,
  );
  log(header);
  const quire = contenders.Quire!;
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

  log('## (e) createPost under concurrent reads of (a)\n');
  log(header);
  let sequence = 0;
  /** A createPost per request, each with a unique title (and slug where the client supplies it). */
  const creating = (url: string, headers: Record<string, string>, mutation: () => string) => ({
    url,
    headers,
    body: '',
    setupRequest: (request: Record<string, unknown>) => {
      sequence += 1;
      return { ...request, body: JSON.stringify({ query: mutation() }) };
    },
  });
  const writers: { name: string; create: Workload; read: Workload }[] = [
    {
      name: 'Quire',
      create: creating(quire.url, { authorization: `Bearer ${token}` }, () => {
        return `mutation { createPost(input: { title: "Bench post ${process.pid} ${sequence}", body: "x" }) { post { id } } }`;
      }),
      read: {
        url: quire.url,
        body: JSON.stringify({ query: queries['(a) post by id with author']!('Quire') }),
      },
    },
  ];
  if (contenders.PostGraphile) {
    const { url } = contenders.PostGraphile;
    writers.push({
      name: 'PostGraphile',
      // PostGraphile's generated CRUD mutation: one INSERT, no auth, no cache to invalidate.
      create: creating(url, {}, () => {
        return `mutation { createPost(input: { post: { authorId: "${author.id}", title: "Bench post ${process.pid} ${sequence}", slug: "bench-postgraphile-${process.pid}-${sequence}", body: "x" } }) { post { id } } }`;
      }),
      read: {
        url,
        body: JSON.stringify({ query: queries['(a) post by id with author']!('PostGraphile') }),
      },
    });
  }
  const writeResults: Record<string, { writes: Measurement; reads: Measurement }> = {};
  for (const { name, create, read } of writers) {
    const contender = contenders[name]!;
    await checkOnce(
      { ...create, body: String(create.setupRequest!({}).body) },
      `${name} createPost`,
    );
    const [writes, reads] = await Promise.all([
      measure(create, {
        ...timing,
        connections: writeConnections,
        warmupSeconds: 0,
        counter: contender.counter,
      }),
      measure(read, { ...timing, warmupSeconds: 0 }),
    ]);
    writeResults[name] = { writes, reads };
    log(row(`${name} createPost`, writes, rssMegabytes(contender.pid)));
    log(row(`${name} (a) reads meanwhile`, reads, rssMegabytes(contender.pid)));
  }
  if (writeResults.PostGraphile)
    log(
      `\nQuire's throughput relative to PostGraphile: createPost ${ratio(writeResults.Quire!.writes.requestsPerSecond, writeResults.PostGraphile.writes.requestsPerSecond)}; (a) reads meanwhile ${ratio(writeResults.Quire!.reads.requestsPerSecond, writeResults.PostGraphile.reads.requestsPerSecond)}. Quire's createPost also authenticates the bearer token, rate-limits, derives the slug and invalidates the cache after commit.`,
    );
  log('');

  await measureFanout(db, author.id, token);

  log('## Tracing off vs on (OpenTelemetry)\n');
  const tracing = await compareTracing(quireSpans(queries, quireNested));
  log(
    `Three Quire servers side by side (\`CACHE=off\`, so every request runs its SQL): one without \`OTEL_*\`, one with \`OTEL_TRACES_EXPORTER=otlp\` sending every span over OTLP/HTTP protobuf to a sink in the harness (a collector's share of the work is not charged to the server), and one sampling 10 % of the traces (\`OTEL_TRACES_SAMPLER=parentbased_traceidratio\`, \`OTEL_TRACES_SAMPLER_ARG=0.1\`). Measured one after another, then again in reverse order; the mean is shown. CPU per request: the server process's user + system time (\`/proc/<pid>/stat\`) over the measured run, divided by the requests it answered. Spans per request: the batch that carries one request sent alone.\n`,
  );
  log(
    '| workload | tracing | req/s | p50 ms | p99 ms | CPU ms / request | spans / request | OTLP bytes / request |\n|---|---|---|---|---|---|---|---|',
  );
  for (const result of tracing) {
    for (const variant of result.variants) {
      log(
        `| ${result.workload} | ${variant.name} | ${variant.requestsPerSecond} | ${variant.p50} | ${variant.p99} | ${variant.cpuMsPerRequest.toFixed(2)} | ${variant.exporting ? result.spansPerRequest : '—'} | ${variant.exporting ? Math.round(variant.exportedBytesPerRequest) : '—'} |`,
      );
    }
  }
  const change = (on: TracedMeasurement, off: TracedMeasurement) =>
    `throughput ${ratio(on.requestsPerSecond, off.requestsPerSecond)}, CPU per request ${on.cpuMsPerRequest >= off.cpuMsPerRequest ? '+' : ''}${Math.round((on.cpuMsPerRequest / off.cpuMsPerRequest - 1) * 100)} %`;
  log(
    `\nRelative to tracing off: ${tracing
      .map((result) => {
        const [off, ...on] = result.variants;
        return `${result.workload}: ${on.map((variant) => `${variant.name} ${change(variant, off!)}`).join(', ')}`;
      })
      .join('; ')}.\n`,
  );

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

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMilliseconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}
const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

interface TracedMeasurement extends Measurement {
  cpuMsPerRequest: number;
  exportedBytesPerRequest: number;
}

/** The two workloads of the tracing comparison, in Quire's query text. */
function quireSpans(
  queries: Record<string, (name: string) => string | null>,
  nested: string,
): [string, string][] {
  return [
    ['(a) post by id with author', queries['(a) post by id with author']!('Quire')!],
    ['(b) 50 posts, author, tags, 5 comments with authors', nested],
  ];
}

/**
 * Quire without tracing, with every span exported and with 10 % of traces sampled, started side by
 * side; each workload measured on each in turn, then in reverse order (once in a smoke run). The
 * OTLP sink counts the bytes that arrive; one extra request, sent alone while the exporter is
 * idle, gives the spans a request makes.
 */
async function compareTracing(workloads: [string, string][]): Promise<
  {
    workload: string;
    variants: (TracedMeasurement & { name: string; exporting: boolean })[];
    spansPerRequest: number;
  }[]
> {
  const { createServer } = await import('node:http');
  let exportedBytes = 0;
  let exports = 0;
  const sink = createServer((request, response) => {
    request.on('data', (chunk: Uint8Array) => {
      exportedBytes += chunk.length;
    });
    request.on('end', () => {
      exports += 1;
      response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  started.push({ stop: () => new Promise((resolve) => sink.close(resolve)) });
  const sinkPort = (sink.address() as { port: number }).port;
  const exporting = {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
    OTEL_SERVICE_NAME: 'quire-bench',
    // The default queue (2,048 spans) drops spans at this rate: every span must be paid for.
    OTEL_BSP_MAX_QUEUE_SIZE: '100000',
    // Batches every second instead of 5: the bytes of a measured run arrive soon after it.
    OTEL_BSP_SCHEDULE_DELAY: '1000',
  };
  const base = { CACHE: 'off', WORKER: 'off', DATABASE_URL: databaseUrl(databaseName) };
  const variants: { name: string; env: Record<string, string>; exporting: boolean }[] = [
    { name: 'off', env: base, exporting: false },
    { name: 'on', env: { ...base, ...exporting }, exporting: true },
    {
      name: 'on, 10 % sampled',
      env: {
        ...base,
        ...exporting,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.1',
      },
      exporting: true,
    },
  ];
  const servers = new Map<string, ServerProcess>();
  for (const variant of variants)
    servers.set(variant.name, await spawn('main', variant.env, `Quire, tracing ${variant.name}`));
  const results = [];
  for (const [workload, query] of workloads) {
    const body = JSON.stringify({ query });
    const figures = new Map<string, TracedMeasurement[]>();
    const order = rounds > 1 ? [...variants, ...[...variants].reverse()] : variants;
    for (const variant of order) {
      const server = servers.get(variant.name)!;
      const target = { url: server.url, body };
      await checkOnce(target, `Quire, tracing ${variant.name}`);
      if (timing.warmupSeconds > 0)
        await measure(target, { ...timing, warmupSeconds: 0, seconds: timing.warmupSeconds });
      if (variant.exporting) await exporterIdle();
      const cpuBefore = cpuMilliseconds(server.child.pid);
      const bytesBefore = exportedBytes;
      const measured = await measure(target, { ...timing, warmupSeconds: 0 });
      const cpu = cpuMilliseconds(server.child.pid) - cpuBefore;
      // The spans of the last requests leave with the next batch: wait for it before counting.
      if (variant.exporting) await exporterIdle();
      figures.set(variant.name, [
        ...(figures.get(variant.name) ?? []),
        {
          ...measured,
          cpuMsPerRequest: cpu / Math.max(1, measured.requests),
          exportedBytesPerRequest: (exportedBytes - bytesBefore) / Math.max(1, measured.requests),
        },
      ]);
    }
    results.push({
      workload,
      variants: variants.map((variant) => ({
        name: variant.name,
        exporting: variant.exporting,
        ...combineTraced(figures.get(variant.name)!),
      })),
      spansPerRequest: await spansOfOneRequest(servers.get('on')!.url, body),
    });
  }
  return results;

  /** Waits until no export has arrived for longer than the exporter's 1 s schedule. */
  async function exporterIdle(): Promise<void> {
    for (let last = -1; last !== exports; ) {
      last = exports;
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  /** The spans in the batch that carries one request, sent alone. */
  async function spansOfOneRequest(url: string, body: string): Promise<number> {
    await exporterIdle();
    const arrived = new Promise<Uint8Array>((resolve) => {
      sink.once('request', (request) => {
        const chunks: Uint8Array[] = [];
        request.on('data', (chunk: Uint8Array) => chunks.push(chunk));
        request.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
      });
    });
    await request({ url, body }, 'Quire, tracing on');
    return countOtlpSpans(await arrived);
  }
}

/** The mean of a tracing state's rounds. */
function combineTraced(measurements: TracedMeasurement[]): TracedMeasurement {
  const mean = (pick: (m: TracedMeasurement) => number) =>
    measurements.reduce((sum, m) => sum + pick(m), 0) / measurements.length;
  return {
    ...combine(measurements),
    cpuMsPerRequest: mean((m) => m.cpuMsPerRequest),
    exportedBytesPerRequest: mean((m) => m.exportedBytesPerRequest),
  };
}

/**
 * Counts the spans in an OTLP ExportTraceServiceRequest (protobuf): resource_spans (1) →
 * scope_spans (2) → spans (2), each a length-delimited field; walking the wire format is enough.
 */
function countOtlpSpans(message: Uint8Array): number {
  const fields = (buffer: Uint8Array, wanted: number): Uint8Array[] => {
    const found: Uint8Array[] = [];
    let offset = 0;
    const varint = () => {
      let value = 0;
      let shift = 0;
      for (;;) {
        const byte = buffer[offset++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return value;
        shift += 7;
      }
    };
    while (offset < buffer.length) {
      const key = varint();
      const wire = key & 7;
      if (wire === 0) varint();
      else if (wire === 1) offset += 8;
      else if (wire === 5) offset += 4;
      else if (wire === 2) {
        const length = varint();
        if (key >>> 3 === wanted) found.push(buffer.subarray(offset, offset + length));
        offset += length;
      } else throw new Error(`unexpected protobuf wire type ${wire}`);
    }
    return found;
  };
  return fields(message, 1)
    .flatMap((resourceSpans) => fields(resourceSpans, 2))
    .reduce((count, scopeSpans) => count + fields(scopeSpans, 2).length, 0);
}

/**
 * The fan-out table: for each transport and size, N subscribers to one run's events, then a
 * worker runs the pipeline. Besides latency it reports the API's memory per held subscriber (RSS
 * once all are connected, minus RSS before they connected, over N) and its CPU time per delivered
 * event (user + system time from the worker's start to the last delivery, over the deliveries).
 */
async function measureFanout(db: Db, authorId: string, token: string): Promise<void> {
  log(
    '## Subscription fan-out (one API instance, events from a separate worker via Redis; each subscriber on its own connection)\n',
  );
  log(
    '| transport | subscribers | connected | live events delivered | delivery p50 ms | delivery p99 ms | API KiB per subscriber | API CPU µs per delivered event | harness CPU µs per delivered event |\n|---|---|---|---|---|---|---|---|---|',
  );
  const fanoutPrefix = redisPrefix('fanout');
  const apiEnv = {
    WORKER: 'off',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: fanoutPrefix,
    DATABASE_URL: databaseUrl(databaseName),
    CACHE: 'off',
    WS_INIT_TIMEOUT_MS: '60000',
    ...(flags.profile
      ? {
          NODE_OPTIONS: `--import ${fileURLToPath(new URL('./cpu-profile.mjs', import.meta.url))}`,
          CPU_PROFILE_DIR: flags.profile,
        }
      : {}),
  };
  const workerEnv = {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: fanoutPrefix,
    DATABASE_URL: databaseUrl(databaseName),
    PIPELINE_STEP_DELAY_MS: '40',
    PIPELINE_POLL_MS: '100',
  };
  const heldWithinTarget: Record<string, number> = {};
  const atThousand: Record<string, string> = {};
  for (const transport of fanoutTransports) {
    heldWithinTarget[transport] = 0;
    for (const subscribers of fanoutSizes) {
      // A fresh API per size: its memory before the subscribers is the baseline of the next column.
      const api = await spawn(
        'main',
        apiEnv,
        commands.some(([label]) => label === 'fan-out API') ? undefined : 'fan-out API',
      );
      const post = await db
        .insertInto('posts')
        .values({
          author_id: authorId,
          title: `Fan-out ${transport} ${subscribers}`,
          slug: `fan-out-${process.pid}-${transport.replace(/\W/g, '')}-${subscribers}`.toLowerCase(),
          body: 'Solar panels on city roofs. '.repeat(40),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const { startPipeline } = await request<{ startPipeline: { pipelineRun: { id: string } } }>(
        {
          url: api.url,
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify({
            query:
              'mutation($id: ID!) { startPipeline(input: { postId: $id }) { pipelineRun { id } } }',
            variables: { id: Buffer.from(`Post:${post.id}`).toString('base64url') },
          }),
        },
        'startPipeline',
      );
      const rssBefore = rssKibibytes(api.child.pid);
      const runId = startPipeline.pipelineRun.id;
      const fanout = subscribeMany(transport, api.url, token, runId, subscribers);
      await Promise.race([
        fanout.ready,
        new Promise((resolve) => setTimeout(resolve, Math.max(30_000, subscribers * 12))),
      ]);
      const rssHeld = rssKibibytes(api.child.pid);
      const cpuBefore = cpuMicroseconds(api.child.pid);
      const harnessCpuBefore = process.cpuUsage();
      // A profiled API profiles the deliveries only (bench/cpu-profile.mjs).
      if (flags.profile) api.child.kill('SIGUSR2');
      const worker = await spawn(
        'worker',
        workerEnv,
        commands.some(([label]) => label === 'fan-out worker') ? undefined : 'fan-out worker',
      );
      const result = await fanout.done(fanoutDeadlineMs);
      const cpuPerEvent = (cpuMicroseconds(api.child.pid) - cpuBefore) / Math.max(1, result.events);
      const harnessCpu = process.cpuUsage(harnessCpuBefore);
      const harnessCpuPerEvent = (harnessCpu.user + harnessCpu.system) / Math.max(1, result.events);
      await worker.stop();
      const stored = await db
        .selectFrom('pipeline_events')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('run_id', '=', Buffer.from(runId, 'base64url').toString().split(':')[1]!)
        .executeTakeFirstOrThrow();
      // Every subscriber replays run.queued when it connects; the others arrive live.
      const expected = result.connected * (Number(stored.count) - 1);
      // Why a size fell short, from the API's own warnings (LOG_LEVEL=warn), counted by message.
      const apiWarnings = new Map<string, number>();
      for (const line of api.output().split('\n')) {
        if (!line.startsWith('{')) continue;
        let entry: { msg?: string; err?: unknown };
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        const what = `${entry.msg}${entry.err ? `: ${JSON.stringify(entry.err).slice(0, 120)}` : ''}`;
        apiWarnings.set(what, (apiWarnings.get(what) ?? 0) + 1);
      }
      // SIGTERM lets a profiled API write its profile; the others need no grace.
      await api.stop(flags.profile ? 'SIGTERM' : 'SIGKILL');
      const held =
        result.connected === subscribers && result.events === expected && result.p99 < 250;
      if (held) heldWithinTarget[transport] = subscribers;
      if (subscribers === 1000)
        atThousand[transport] = `p50 ${result.p50} ms, p99 ${result.p99} ms`;
      log(
        `| ${transport} | ${subscribers} | ${result.connected} | ${result.events.toLocaleString('en')}${result.timedOut ? ` (timed out after ${fanoutDeadlineMs / 1000} s)` : ''} of ${expected.toLocaleString('en')} | ${result.p50} | ${result.p99} | ${Math.round((rssHeld - rssBefore) / Math.max(1, result.connected))} | ${Math.round(cpuPerEvent)} | ${Math.round(harnessCpuPerEvent)} |`,
      );
      if (!held && apiWarnings.size > 0)
        console.error(
          `fan-out ${transport} ${subscribers}: API warnings ${JSON.stringify([...apiWarnings])}`,
        );
    }
  }
  if (Object.keys(atThousand).length > 0)
    log(
      `\nDelivery at N = 1,000: ${Object.entries(atThousand)
        .map(([transport, figures]) => `${transport} ${figures}`)
        .join('; ')}.`,
    );
  log(
    `\nLargest N tried with every subscriber connected, every event delivered and p99 < 250 ms: ${fanoutTransports.map((transport) => `${transport} **${heldWithinTarget[transport] || 'none'}**`).join(', ')}.\n`,
  );
}

/** How the fan-out table is measured, for the report. */
const fanoutMethod = () =>
  `Fan-out: for each transport and size a fresh API process; N subscribers opened at once by the harness (SSE: one \`node:http\` request each; graphql-ws: one \`createClient\` with \`webSocketImpl\` from \`ws\` each), then a worker is started and runs one pipeline (its steps 40 ms apart); delivery latency = receipt time − the event's \`createdAt\`; memory per subscriber = the API's RSS once all are connected minus its RSS before, over N; CPU per event = the process's user + system time from the worker's start to the last delivery, over the deliveries (the harness parses every subscriber's stream on the same cores); each size may take ${fanoutDeadlineMs / 1000} s.`;

/** Deletes this run's Redis keys (cache entries, tag generations, rate-limit windows). */
async function deleteRedisKeys(): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    await redis.connect();
    for await (const keys of redis.scanStream({ match: `${redisPrefix('*')}*`, count: 1000 })) {
      if ((keys as string[]).length === 0) continue;
      deleted += await redis.unlink(...(keys as string[]));
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/**
 * Kills this process's remaining Node children: one whose start was under way when the run was
 * aborted is in no `started` entry yet, and would outlive the harness.
 */
function killRemainingChildren(): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = (() => {
      try {
        return readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        return '';
      }
    })();
    // Fields after the parenthesised command: state, then the parent's pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    // Node children only (the servers and workers), not tsx's esbuild service.
    const command = parent === process.pid ? readFileSync(`/proc/${entry}/cmdline`, 'utf8') : '';
    if (command.startsWith(process.execPath)) process.kill(Number(entry), 'SIGKILL');
  }
}

let cleaning: Promise<void> | undefined;
/** Stops everything the run started, once, whether it finished, failed, was interrupted or ran out of time. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const handle of started.reverse()) await handle.stop().catch(() => {});
    killRemainingChildren();
    const deleted = await deleteRedisKeys().catch((error: unknown) => {
      console.error('could not delete the Redis keys', error);
      return 0;
    });
    console.log(`deleted ${deleted} Redis keys under ${redisPrefix('*')}`);
    if (!flags.keep)
      await admin(`drop database if exists ${databaseName} with (force)`).catch(() => {});
  })();
  return cleaning;
}

async function abort(reason: string, exitCode: number): Promise<never> {
  console.error(`\n${reason}: stopping everything this run started`);
  await cleanUp();
  process.exit(exitCode);
}

process.once('SIGINT', () => void abort('SIGINT', 130));
process.once('SIGTERM', () => void abort('SIGTERM', 143));
setTimeout(
  () => void abort(`run exceeded its ${runBudgetMs / 60_000} min budget`, 1),
  runBudgetMs,
).unref();

try {
  await main();
  const output = onlyFanout
    ? '/tmp/quire-bench-fanout.md'
    : smoke
      ? '/tmp/quire-bench-smoke.md'
      : new URL('../docs/BENCHMARKS.md', import.meta.url);
  writeFileSync(output, `${lines.join('\n')}\n`);
  console.log(`\nwritten to ${output}`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
