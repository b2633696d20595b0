import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config.ts';
import { createLogger } from '../infra/logger.ts';
import { ShutdownSequence } from '../infra/shutdown.ts';
import { ALL_COMMENTS_TAG } from '../modules/comment/comment.cache.ts';
import { ALL_POSTS_TAG } from '../modules/post/post.cache.ts';
import { ALL_USERS_TAG } from '../modules/user/user.cache.ts';
import { startRuntime } from '../runtime.ts';
import { seed } from './seed.ts';
import { runPipelineToEnd, seedDemo } from './seed-demo.ts';

/**
 * `npm run seed`: the demo data, real READMEs of the installed packages imported as posts and
 * run through the pipeline (`--skip-pipeline` to leave that to the server's worker).
 * `npm run seed -- --posts 100000 [--users …] [--comments …] [--tags …]`: benchmark-scale data
 * generated inside Postgres from the same README paragraphs.
 */
const { values } = parseArgs({
  options: {
    users: { type: 'string' },
    posts: { type: 'string' },
    comments: { type: 'string' },
    tags: { type: 'string' },
    'skip-pipeline': { type: 'boolean', default: false },
  },
});
const generated = [values.users, values.posts, values.comments, values.tags].some(
  (value) => value !== undefined,
);
const config = loadConfig();
const logger = createLogger(config);
const shutdown = new ShutdownSequence(logger);

/** A bar on a terminal only; elsewhere the summary lines say enough. */
function bar(label: string) {
  const progress = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done: number, total: number) {
      if (!process.stderr.isTTY) return;
      if (!started) progress.start(total, 0);
      started = true;
      progress.setTotal(total);
      progress.update(done);
    },
    stop: () => started && progress.stop(),
  };
}

try {
  const { deps } = await startRuntime(config, logger, shutdown, {
    allowEmbedded: true,
  });
  if (generated) {
    const report = await seed(deps.db, {
      users: Number(values.users ?? 200),
      posts: Number(values.posts ?? 2000),
      commentsPerPost: Number(values.comments ?? 3),
      tags: Number(values.tags ?? 40),
    });
    // Servers sharing this Redis must not keep serving responses from before the load.
    await deps.cache.invalidate([ALL_POSTS_TAG, ALL_USERS_TAG, ALL_COMMENTS_TAG]);
    console.log(
      `seeded ${report.rows} rows in ${report.seconds.toFixed(2)} s (${report.rowsPerSecond} rows/s)`,
    );
  } else {
    const importing = bar('importing');
    const report = await seedDemo(deps, {
      process: !values['skip-pipeline'],
      onProgress: (phase, done, total) => phase === 'write' && importing.update(done, total),
    });
    importing.stop();
    console.log(
      `corpus: ${report.documents} READMEs of installed packages, ${report.words} words, ${report.distinctWords} distinct`,
    );
    console.log(
      `imported ${report.posts} posts by ${report.authors} authors with ${report.tagLinks} tag links in ${report.seconds.toFixed(2)} s (${report.rowsPerSecond} rows/s)`,
    );
    if (report.queuedRuns > 0) {
      const started = performance.now();
      const processing = bar('pipeline ');
      await runPipelineToEnd(deps, processing.update);
      processing.stop();
      console.log(
        `pipeline ran over ${report.queuedRuns} posts in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    }
  }
} finally {
  await shutdown.run();
}
// The embedded Postgres package's exit hook ends a drained process with 0 whatever exitCode says.
process.exit(process.exitCode ?? 0);
