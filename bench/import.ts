import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadSeedText } from '../src/db/seed.ts';
import { loadReadmeCorpus } from '../src/db/seed-corpus.ts';
import { generateToken, hashToken } from '../src/modules/auth/token.ts';
import { databaseUrl, withAdminClient } from '../test/helpers/services.ts';

/**
 * `npm run bench:import`: importPosts through the real HTTP API. Starts `src/main.ts` on a fresh
 * database (no Redis, worker off), then sends `--rounds` calls of `--posts` posts each (5,000 by
 * default: MAX_IMPORT_POSTS) and prints rows written per second, with the CPU time of the API
 * process and of its Postgres backends. Rows written are counted in the database (posts, tags,
 * post_tags, users, pipeline runs/steps/events), not assumed. `--baseline <dir>` starts a second
 * server from another checkout (e.g. `git archive main | tar -x -C /tmp/base`, with its own
 * node_modules link) on its own fresh database, and alternates the two round by round, so
 * before and after are measured in the same window. `--process` queues a pipeline run per post.
 * `--parallel <n>` sends n calls at once per round (distinct posts, one transaction each), so
 * one call's API work can run beside another's Postgres work on the other core: rows/s is then
 * all n calls' rows over the round's time. `--profile <dir>` writes each server's CPU profiles (one per thread: take the larger) into
 * `<dir>/<name>/`, warm-up included; summarise one with bench/profile-summary.ts.
 */
const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    posts: { type: 'string', default: '5000' },
    baseline: { type: 'string' },
    process: { type: 'boolean', default: false },
    profile: { type: 'string' },
    parallel: { type: 'string', default: '1' },
  },
});
const rounds = Number(flags.rounds);
const parallel = Number(flags.parallel);
const postsPerCall = Number(flags.posts);
const here = fileURLToPath(new URL('..', import.meta.url));

/** What one post is made of, as the seed makes it (src/db/seed.ts): real README prose. */
async function postsOf(round: number): Promise<unknown[]> {
  const { paragraphs, headings } = await text;
  const documents = await corpus;
  return Array.from({ length: postsPerCall }, (_, index) => {
    const n = round * postsPerCall + index;
    const count = 1 + (n % 4);
    const body = Array.from(
      { length: count },
      (_, w) => paragraphs[(n * 31 + (w + 1) * 7919) % paragraphs.length],
    ).join('\n\n');
    // Tags are the keywords of one README package (0–20, 6 on average), so the tag set is real.
    const document = documents[n % documents.length]!;
    return {
      title: headings[(n * 13) % headings.length],
      body,
      slug: `bench-import-${n}`,
      status: n % 10 < 7 ? 'PUBLISHED' : 'DRAFT',
      tags: document.tags,
    };
  });
}
const text = loadSeedText();
const corpus = loadReadmeCorpus();

const mutation = `mutation Import($posts: [CreatePostInput!]!, $process: Boolean) {
  importPosts(input: { posts: $posts, process: $process }) { importedCount queuedRunCount }
}`;
const counted = [
  'users',
  'posts',
  'tags',
  'post_tags',
  'pipeline_runs',
  'pipeline_steps',
  'pipeline_events',
];

interface Contender {
  name: string;
  dir: string;
  database: string;
  child: ChildProcess;
  url: string;
  token: string;
  client: pg.Client;
  output: () => string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** User + system CPU time of a process so far, in ms (/proc/<pid>/stat, 100 ticks per second). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0; // the process has exited
  }
}

const started: Contender[] = [];

async function startContender(name: string, dir: string): Promise<Contender> {
  const database = `quire_bench_import_${name}_${process.pid}`;
  await withAdminClient(async (client) => {
    await client.query(`drop database if exists ${database} with (force)`);
    await client.query(`create database ${database}`);
  });
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(flags.profile, name)}`] : []),
      '--import',
      'tsx',
      '--import',
      './src/instrumentation.ts',
      'src/main.ts',
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl(database),
        REDIS_URL: '',
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        WORKER: 'off',
        MIGRATE_ON_START: 'on',
        // 5,000 posts of 1–4 paragraphs are about 3.5 MB of JSON.
        MAX_BODY_BYTES: String(32 * 1024 * 1024),
        RATE_LIMIT_MUTATIONS: '100000000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const url = `http://127.0.0.1:${port}/graphql`;
  const client = new pg.Client({ connectionString: databaseUrl(database) });
  const contender: Contender = {
    name,
    dir,
    database,
    child,
    url,
    token: '',
    client,
    output: () => output,
  };
  started.push(contender);
  for (const deadline = Date.now() + 60_000; ; ) {
    const up = await fetch(`http://127.0.0.1:${port}/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${name} did not start:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  await client.connect();
  const token = generateToken();
  const { rows } = await client.query<{ id: string }>(
    `insert into users (email, name, role) values ('bench-import@example.com', 'Bench', 'EDITOR') returning id`,
  );
  await client.query(
    `insert into api_tokens (user_id, name, token_hash) values ($1, 'bench', $2)`,
    [rows[0]!.id, hashToken(token)],
  );
  contender.token = token;
  return contender;
}

async function rowCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ count: string }>(
    `select ${counted.map((table) => `(select count(*) from ${table})`).join(' + ')} as count`,
  );
  return Number(rows[0]!.count);
}

/** The server's Postgres backends (its pool), by pid; the harness's own connection excluded. */
async function backends(contender: Contender): Promise<number[]> {
  const { rows } = await contender.client.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
    [contender.database],
  );
  return rows.map((row) => row.pid);
}

interface Round {
  seconds: number;
  rows: number;
  apiCpuMs: number;
  pgCpuMs: number;
}

/** One round: `parallel` calls at once, posts of rounds `round × parallel` onwards. */
async function importOnce(contender: Contender, round: number): Promise<Round> {
  const bodies = await Promise.all(
    Array.from({ length: parallel }, async (_, call) =>
      JSON.stringify({
        query: mutation,
        variables: { posts: await postsOf(round * parallel + call), process: flags.process },
      }),
    ),
  );
  const rowsBefore = await rowCount(contender.client);
  const pids = await backends(contender);
  const pgBefore = new Map(pids.map((pid) => [pid, cpuMs(pid)]));
  const apiBefore = cpuMs(contender.child.pid!);
  const startedAt = performance.now();
  const results = await Promise.all(
    bodies.map(async (body) => {
      const response = await fetch(contender.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${contender.token}`,
        },
        body,
      });
      return (await response.json()) as {
        data?: { importPosts: { importedCount: number } };
        errors?: unknown[];
      };
    }),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  const apiCpuMs = cpuMs(contender.child.pid!) - apiBefore;
  // A backend opened during the call counts from zero; one closed meanwhile is lost (the pool
  // keeps its connections for DB_IDLE_TIMEOUT_MS, longer than a call).
  const pgCpuMs = (await backends(contender)).reduce(
    (sum, pid) => sum + cpuMs(pid) - (pgBefore.get(pid) ?? 0),
    0,
  );
  for (const result of results) {
    if (result.errors || result.data?.importPosts.importedCount !== postsPerCall) {
      throw new Error(`${contender.name} answered: ${JSON.stringify(result).slice(0, 800)}`);
    }
  }
  const rows = (await rowCount(contender.client)) - rowsBefore;
  return { seconds, rows, apiCpuMs, pgCpuMs };
}

const loadAverage = () =>
  os
    .loadavg()
    .map((load) => load.toFixed(2))
    .join(' / ');

async function main(): Promise<void> {
  const contenders = [{ name: 'current', dir: here }];
  if (flags.baseline) {
    const dir = resolve(flags.baseline);
    if (!existsSync(`${dir}/src/main.ts`) || !existsSync(`${dir}/node_modules`)) {
      throw new Error(`--baseline ${dir}: needs src/main.ts and node_modules (a link will do)`);
    }
    contenders.unshift({ name: 'baseline', dir });
  }
  console.log(
    `importPosts bench ${new Date().toISOString()}: ${rounds} rounds of ${postsPerCall} posts` +
      `${flags.process ? ' with process: true' : ''}${parallel > 1 ? `, ${parallel} calls at once` : ''}; ${os.cpus().length} cores; load average ${loadAverage()}`,
  );
  const running: Contender[] = [];
  for (const { name, dir } of contenders) running.push(await startContender(name, dir));
  // Warm-up: the first call pays module loading, JIT and the pool's connections.
  for (const contender of running) await importOnce(contender, 1000 + running.indexOf(contender));
  const results = new Map<string, Round[]>(running.map((contender) => [contender.name, []]));
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so a drifting machine load does not favour one side.
    const order = round % 2 === 0 ? running : [...running].reverse();
    for (const contender of order) {
      const measured = await importOnce(contender, round);
      results.get(contender.name)!.push(measured);
      console.log(
        `round ${round + 1} ${contender.name}: ${measured.rows} rows in ${measured.seconds.toFixed(2)} s = ${Math.round(measured.rows / measured.seconds)} rows/s; API CPU ${measured.apiCpuMs} ms, Postgres CPU ${measured.pgCpuMs} ms`,
      );
    }
  }
  console.log(`\nload average at the end ${loadAverage()}`);
  const unit = parallel > 1 ? `round (${parallel} calls)` : 'call';
  console.log(
    `| server | rows per ${unit} | rows/s (median) | s per ${unit} (median) | API CPU ms per ${unit} | Postgres CPU ms per ${unit} |`,
  );
  console.log('|---|---|---|---|---|---|');
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const summary = new Map<string, number>();
  for (const [name, measured] of results) {
    const rate = median(measured.map((each) => each.rows / each.seconds));
    summary.set(name, rate);
    console.log(
      `| ${name} | ${median(measured.map((each) => each.rows))} | ${Math.round(rate)} | ${median(measured.map((each) => each.seconds)).toFixed(2)} | ${median(measured.map((each) => each.apiCpuMs))} | ${median(measured.map((each) => each.pgCpuMs))} |`,
    );
  }
  if (summary.has('baseline')) {
    console.log(
      `\ncurrent / baseline rows/s: ${(summary.get('current')! / summary.get('baseline')!).toFixed(2)}×`,
    );
  }
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  for (const contender of started) {
    if (contender.child.exitCode === null) {
      contender.child.kill('SIGTERM');
      await once(contender.child, 'exit');
    }
    await contender.client.end().catch(() => {});
    await withAdminClient((client) =>
      client.query(`drop database if exists ${contender.database} with (force)`),
    ).catch(() => {});
  }
}
