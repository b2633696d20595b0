import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.ts';
import { createDatabase, createPool } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { seed } from '../src/db/seed.ts';
import { createLogger } from '../src/infra/logger.ts';
import { documentHash } from '../src/plugins/persisted-operations.ts';
import { startProcess } from '../test/helpers/processes.ts';
import { databaseUrl, redisUrl, withAdminClient } from '../test/helpers/services.ts';

/**
 * `npm run bench:apq`: one server (REDIS_URL set, so APQ documents live in Redis), the feed
 * query sent as text (POST), by APQ hash (POST) and by APQ hash over GET, loaded in turn with
 * autocannon; prints requests/s, latency and request bytes side by side. Run twice: with the
 * response cache (the usual read path) and without it (every request executes).
 */
const seconds = Number(process.env.APQ_BENCH_SECONDS ?? 8);
const connections = 10;
const feed = `query Feed {
  posts(first: 20, orderBy: { field: PUBLISHED_AT, direction: DESC }) {
    edges { node { id title summary author { name } tags { name } comments(first: 3) { edges { node { body author { name } } } } } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const extensions = JSON.stringify({
  persistedQuery: { version: 1, sha256Hash: documentHash(feed) },
});

const name = `quire_bench_apq_${randomBytes(4).toString('hex')}`;
await withAdminClient((client) => client.query(`create database ${name}`));
const url = databaseUrl(name);
const config = loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'warn' });
const db = createDatabase(createPool(url, config), createLogger(config), config);
await migrateToLatest(db);
await seed(db, { users: 200, posts: 2000, commentsPerPost: 3, tags: 20 });
await db.destroy();

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** CPU time the process has used, in ms (Linux /proc: utime + stime at 100 ticks/s). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

type Request = { method: 'GET' | 'POST'; path: string; body?: string };

interface Row {
  variant: string;
  cpuMsPerRequest: number;
  bytes: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  failures: number;
}

async function load(server: string, pid: number, variant: string, request: Request): Promise<Row> {
  const run = (duration: number) =>
    autocannon({
      url: `${server}${request.path}`,
      connections,
      duration,
      requests: [
        {
          method: request.method,
          headers: { 'content-type': 'application/json' },
          ...(request.body ? { body: request.body } : {}),
        },
      ],
    });
  await run(2);
  const cpuBefore = cpuMs(pid);
  const result = await run(seconds);
  return {
    variant,
    cpuMsPerRequest: (cpuMs(pid) - cpuBefore) / result['2xx'],
    bytes: request.body ? Buffer.byteLength(request.body) : Buffer.byteLength(request.path),
    // Answered requests only: a refused one (e.g. PersistedQueryNotFound) costs almost nothing.
    requestsPerSecond: Math.round(result['2xx'] / seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.errors + result.timeouts + result.non2xx,
  };
}

try {
  for (const responseCache of ['on', 'off']) {
    const server = await startProcess('main', {
      DATABASE_URL: url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: `${name}:${responseCache}:`,
      WORKER: 'off',
      NODE_ENV: 'production',
      // A fixed port: with warn the ready line is not logged, so readiness is /health.
      LOG_LEVEL: 'warn',
      PORT: String(await freePort()),
      RESPONSE_CACHE: responseCache,
      // On a shared 2-core machine the 50 ms production bound turns scheduler stalls into Redis
      // failures (lookups answered "not found"); the comparison is of the request paths.
      REDIS_COMMAND_TIMEOUT_MS: '1000',
    });
    try {
      const origin = server.url.replace(/\/graphql$/, '');
      // Registers the document, as a client's first (PersistedQueryNotFound) round trip would.
      await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: feed, extensions: JSON.parse(extensions) }),
      });
      const variants: [string, Request][] = [
        ['text, POST', { method: 'POST', path: '/graphql', body: JSON.stringify({ query: feed }) }],
        [
          'APQ hash, POST',
          { method: 'POST', path: '/graphql', body: `{"extensions":${extensions}}` },
        ],
        [
          'APQ hash, GET',
          { method: 'GET', path: `/graphql?extensions=${encodeURIComponent(extensions)}` },
        ],
      ];
      // Two rounds in opposite orders, so warm-up and neighbours' load fall on every variant.
      const rows: Row[] = [];
      for (const round of [variants, [...variants].reverse()]) {
        for (const [variant, request] of round) {
          rows.push(await load(origin, server.child.pid!, variant, request));
        }
      }
      console.log(
        `\nresponse cache ${responseCache}, ${connections} connections, ${seconds} s each`,
      );
      console.log(
        '| request | bytes sent (body or URL) | requests/s | server CPU ms/request | p50 ms | p99 ms | failures |',
      );
      console.log('|---|---|---|---|---|---|---|');
      for (const row of rows) {
        console.log(
          `| ${row.variant} | ${row.bytes} | ${row.requestsPerSecond} | ${row.cpuMsPerRequest.toFixed(2)} | ${row.p50} | ${row.p99} | ${row.failures} |`,
        );
      }
    } finally {
      await server.stop();
    }
  }
} finally {
  await withAdminClient((client) => client.query(`drop database if exists ${name} with (force)`));
}
