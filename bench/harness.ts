import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Db } from '../src/db/database.ts';
import { type ServerProcess, startProcess } from '../test/helpers/processes.ts';
import type { FanoutTransport } from './fanout.ts';
import type { Measurement, StatementCounter, Workload } from './load.ts';
import { PgCountingProxy } from './pg-counting-proxy.ts';

/** The command line, as documented in run.ts; shared settings and helpers of every scenario follow. */
export const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    keep: { type: 'boolean' },
    only: { type: 'string' },
    sizes: { type: 'string' },
    transports: { type: 'string' },
    profile: { type: 'string' },
  },
});
if (flags.only !== undefined && flags.only !== 'fanout' && flags.only !== 'shapes')
  throw new Error(`--only takes "fanout" or "shapes", not "${flags.only}"`);
export const onlyFanout = flags.only === 'fanout';
/** `--only shapes`: the everyday-shapes table alone, on the full seed, with its four contenders. */
export const onlyShapes = flags.only === 'shapes';
export const smoke = flags.smoke ?? false;
export const size = smoke
  ? { users: 200, posts: 2000, commentsPerPost: 3, tags: 20 }
  : { users: 10_000, posts: 100_000, commentsPerPost: 3, tags: 200 };
export const timing = smoke
  ? { connections: 10, warmupSeconds: 0, seconds: 1 }
  : { connections: 20, warmupSeconds: 2, seconds: 8 };
export const fanoutSizes =
  flags.sizes?.split(',').map(Number) ?? (smoke ? [20] : [250, 1000, 2000, 5000]);
export const fanoutTransports = (flags.transports?.split(',') ?? [
  'SSE',
  'graphql-ws',
]) as FanoutTransport[];
/** How long one fan-out size may take from the worker's start to its last delivery. */
export const fanoutDeadlineMs = smoke ? 15_000 : 60_000;
/** The whole run before cleanup (under 20 min with it); past it the run aborts, stopping everything it started. */
export const runBudgetMs = smoke ? 240_000 : 19 * 60_000;
export const runStartedAt = Date.now();
export const autocannonVersion = (
  JSON.parse(
    readFileSync(new URL('../node_modules/autocannon/package.json', import.meta.url), 'utf8'),
  ) as { version: string }
).version;
/** (e): createPost connections, alongside reads on `timing.connections`. */
export const writeConnections = Math.max(2, Math.round(timing.connections / 4));
/** Rounds of the side-by-side queries (a) and (b), alternating the order of the contenders. */
export const rounds = smoke ? 1 : 2;
/**
 * The everyday shapes: 19 lines in two rounds, so shorter lines than (a)–(e) keep `--only shapes`
 * near 5 minutes; 20 connections as in issue 12's measurements.
 */
export const shapesTiming = smoke ? timing : { connections: 20, warmupSeconds: 1, seconds: 5 };
export const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const databaseName = `quire_bench${smoke ? '_smoke' : ''}${flags.only ? `_${flags.only}` : ''}`;
export const poolSize = '10';
/** Every Redis key this run writes is under this prefix; cleanUp deletes them. */
export const redisPrefix = (role: string) => `quire-bench-${process.pid}-${role}:`;

export const started: { stop(): Promise<unknown> }[] = [];
/** The command line of every measured process, for the report. */
export const commands: [string, string][] = [];
export const lines: string[] = [];
export const log = (line: string) => {
  console.log(line);
  lines.push(line);
};

/**
 * The URL of a database on the admin server; `applicationName` tags the backends it opens in
 * pg_stat_activity (node-postgres lets the URL's parameter win over a pool's own name), which is
 * how a contender's Postgres CPU is found.
 */
export function databaseUrl(name: string, port?: number, applicationName?: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  if (port) url.port = String(port);
  if (applicationName) url.searchParams.set('application_name', applicationName);
  return url.toString();
}

export async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export async function proxied(): Promise<PgCountingProxy> {
  const target = new URL(adminUrl);
  const proxy = new PgCountingProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  started.push(proxy);
  return proxy;
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `ENV=… node --import tsx script`, as the process was started (on top of the inherited environment). */
export function commandLine(script: string, env: Record<string, string>): string {
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
export async function startTwice(
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

export async function spawn(
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

export async function spawnScript(
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
export async function request<T>(workload: Workload, label: string): Promise<T> {
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

export function rssKibibytes(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

export function rssMegabytes(pid: number | undefined): number {
  return Math.round(rssKibibytes(pid) / 1024);
}

/** A process's user + system CPU time so far (/proc/<pid>/stat, in clock ticks of 10 ms). */
export function cpuMicroseconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

export async function checkOnce(workload: Workload, label: string): Promise<void> {
  await request(workload, label);
}

export async function quireSqlCount(workload: Workload): Promise<number> {
  const response = await fetch(workload.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-quire-debug': '1', ...workload.headers },
    body: workload.body,
  });
  return ((await response.json()) as { extensions: { sql: { queries: number } } }).extensions.sql
    .queries;
}

/** The mean of a contender's rounds; the statement count comes from the round that counted. */
export function combine(measurements: Measurement[]): Measurement {
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

export const row = (name: string, m: Measurement, rss?: number) =>
  `| ${name} | ${m.requestsPerSecond} | ${m.p50} | ${m.p99} | ${m.statementsPerRequest?.toFixed(2) ?? '—'} | ${rss ?? '—'} | ${m.failures} |`;
export const header =
  '| contender | req/s | p50 ms | p99 ms | SQL statements / request | RSS MB | failures |\n|---|---|---|---|---|---|---|';
export const loadAverage = () =>
  os
    .loadavg()
    .map((load) => load.toFixed(1))
    .join(' / ');
export const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

/** CPU time (user + system) a process has used so far, in ms. */
export function cpuMilliseconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}
export const clockTicksPerSecond = Number(
  execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }),
);

/** Deletes this run's Redis keys (cache entries, tag generations, rate-limit windows). */
export async function deleteRedisKeys(): Promise<number> {
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
export function killRemainingChildren(): void {
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
export function cleanUp(): Promise<void> {
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

export async function abort(reason: string, exitCode: number): Promise<never> {
  console.error(`\n${reason}: stopping everything this run started`);
  await cleanUp();
  process.exit(exitCode);
}

/** A contender under load: where it answers, its statement-counting twin and its process. */
export interface Contender {
  url: string;
  counter: StatementCounter;
  pid?: number;
  /** `application_name` of its Postgres backends (the twin's are not tagged). */
  applicationName: string;
}

/** What the scenarios share: the seeded database, the rows they ask for and the running servers. */
export interface Bench {
  db: Db;
  /** The AUTHOR whose bearer token the writes use. */
  author: { id: string };
  token: string;
  /** The first published post by id, raw and as Quire's global ID. */
  samplePostId: string;
  postGlobalId: string;
  /** By the name shown in the tables; PostGraphile is absent from a smoke run. */
  contenders: Record<string, Contender>;
  hello: ServerProcess;
}
