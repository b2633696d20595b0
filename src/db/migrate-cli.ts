import { loadConfig } from '../config.ts';
import { createLogger } from '../infra/logger.ts';
import { ShutdownSequence } from '../infra/shutdown.ts';
import { startRuntime } from '../runtime.ts';

/** `npm run migrate`: applies pending migrations (the server also does at start by default). */
const config = loadConfig({ ...process.env, MIGRATE_ON_START: 'true' });
const logger = createLogger(config);
const shutdown = new ShutdownSequence(logger);
try {
  await startRuntime(config, logger, shutdown, { allowEmbedded: true });
} finally {
  await shutdown.run();
}
// The embedded Postgres package's exit hook ends a drained process with 0 whatever exitCode says.
process.exit(process.exitCode ?? 0);
