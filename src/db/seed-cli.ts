import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { createLogger } from '../infra/logger.ts';
import { ShutdownSequence } from '../infra/shutdown.ts';
import { ALL_COMMENTS_TAG } from '../modules/comment/comment.cache.ts';
import { ALL_POSTS_TAG } from '../modules/post/post.cache.ts';
import { ALL_USERS_TAG } from '../modules/user/user.cache.ts';
import { startRuntime } from '../runtime.ts';
import { seed } from './seed.ts';

/** `npm run seed -- --posts 10000`: demo data in the configured (or embedded) database. */
const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '200' },
    posts: { type: 'string', default: '2000' },
    comments: { type: 'string', default: '3' },
    tags: { type: 'string', default: '40' },
  },
});
const config = loadConfig();
const logger = createLogger(config);
const shutdown = new ShutdownSequence(logger);
try {
  const { deps } = await startRuntime(config, logger, shutdown, { allowEmbedded: true });
  const report = await seed(deps.db, {
    users: Number(values.users),
    posts: Number(values.posts),
    commentsPerPost: Number(values.comments),
    tags: Number(values.tags),
  });
  // Servers sharing this Redis must not keep serving responses from before the load.
  await deps.cache.invalidate([ALL_POSTS_TAG, ALL_USERS_TAG, ALL_COMMENTS_TAG]);
  console.log(
    `seeded ${report.rows} rows in ${report.seconds.toFixed(2)} s (${report.rowsPerSecond} rows/s)`,
  );
} finally {
  await shutdown.run();
}
