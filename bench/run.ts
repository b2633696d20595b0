import { writeFileSync } from 'node:fs';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.ts';
import { createDatabase, createPool, type Db } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { seed } from '../src/db/seed.ts';
import { createLogger } from '../src/infra/logger.ts';
import { insertToken } from '../src/modules/auth/auth.repository.ts';
import { startContenders } from './contenders.ts';
import {
  abort,
  admin,
  type Bench,
  cleanUp,
  commands,
  databaseName,
  databaseUrl,
  lines,
  loadAverage,
  log,
  onlyFanout,
  onlyShapes,
  runBudgetMs,
  runStartedAt,
  size,
  smoke,
  started,
} from './harness.ts';
import { logMethod, logPreamble, logTargets } from './report.ts';
import { measureCreatePost } from './scenarios/create-post.ts';
import { measureDeepPage } from './scenarios/deep-page.ts';
import { fanoutMethod, measureFanout } from './scenarios/fanout-table.ts';
import { measureSearch } from './scenarios/search.ts';
import { measureShapes, prepareShapes } from './scenarios/shapes.ts';
import { measureSideBySide, sideBySideQueries } from './scenarios/side-by-side.ts';
import { measureTracing } from './scenarios/tracing.ts';

/**
 * `npm run bench` (≈10 min) or `npm run bench -- --smoke` (seconds, for CI): seeds one database,
 * starts every contender against it, loads them side by side and writes docs/BENCHMARKS.md.
 * `npm run bench -- --only fanout` runs the fan-out table alone (no seed, no other contender) and
 * writes /tmp/quire-bench-fanout.md; with it, `--sizes 250,1000` and `--transports SSE` narrow
 * the table and `--profile <dir>` writes the API's CPU profile (node --cpu-prof) there.
 * `npm run bench -- --only shapes` (≈5 min) runs the everyday-shapes table alone on the full seed
 * and writes /tmp/quire-bench-shapes.md (with `--smoke`, tiny data and no PostGraphile).
 * Settings and helpers: harness.ts; the servers: contenders.ts; one file per table: scenarios/.
 */
async function main(): Promise<void> {
  logPreamble();
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
  await prepareShapes({ db });
  const bench: Bench = {
    db,
    author,
    token,
    samplePostId: samplePost!.id,
    postGlobalId: Buffer.from(`Post:${samplePost!.id}`).toString('base64url'),
    ...(await startContenders(onlyShapes ? ['Quire', 'Quire + Redis cache (warm)'] : undefined)),
  };
  if (onlyShapes) {
    await measureShapes(bench);
    log('## How it was run\n');
    log(
      "Each contender below also has a twin started with the same line but `DATABASE_URL` pointing at a statement-counting proxy (`bench/pg-counting-proxy.ts`) and no `application_name`; only the twin's statements are counted, the load goes to the line shown.\n",
    );
    log('| process | command line |\n|---|---|');
    for (const [label, command] of commands) log(`| ${label} | ${command} |`);
    const elapsedSeconds = Math.round((Date.now() - runStartedAt) / 1000);
    log(
      `\nRun time: ${Math.floor(elapsedSeconds / 60)} min ${elapsedSeconds % 60} s. Load average at the end, this run's own load included: ${loadAverage()}.`,
    );
    return;
  }

  const queries = sideBySideQueries(bench);
  const results = await measureSideBySide(bench, queries);
  const pages = await measureDeepPage(bench);
  await measureSearch(bench);
  await measureCreatePost(bench, queries);
  await measureShapes(bench);
  await measureFanout(db, author.id, token);
  await measureTracing(queries);
  logTargets(results, pages, report);
  logMethod();
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
    : onlyShapes
      ? '/tmp/quire-bench-shapes.md'
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
