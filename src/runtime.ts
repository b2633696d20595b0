import type { Config } from './config.ts';
import type { AppDeps } from './context.ts';
import { createDatabase, createPool } from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { registerBreakerMetrics } from './infra/circuit-breaker.ts';
import type { Logger } from './infra/logger.ts';
import { Metrics } from './infra/metrics.ts';
import { createSharedState } from './infra/shared-state.ts';
import type { ShutdownSequence } from './infra/shutdown.ts';
import { ViewerStreams } from './modules/auth/viewer-streams.ts';
import { countQueuedRuns } from './modules/pipeline/pipeline.repository.ts';

export interface Runtime {
  deps: AppDeps;
  databaseUrl: string;
}

/** Pool, Kysely, Redis-backed state and metrics for one database; `close` releases them. */
export function connectDeps(
  config: Config,
  logger: Logger,
  databaseUrl: string,
): { deps: AppDeps; close(): Promise<void> } {
  const pool = createPool(databaseUrl, config);
  const db = createDatabase(pool, logger, config, () => metrics.sqlStatements.inc());
  const { close, redisBreakers, ...shared } = createSharedState(config, logger);
  const metrics = new Metrics({ pool, ...shared, queueDepth: () => countQueuedRuns(db) });
  registerBreakerMetrics(metrics.registry, redisBreakers);
  const viewerStreams = new ViewerStreams({
    db,
    pubsub: shared.pubsub,
    logger,
    cache: shared.cache,
  });
  return {
    deps: { config, logger, db, metrics, viewerStreams, ...shared },
    async close() {
      await close();
      await db.destroy();
    },
  };
}

/**
 * The shared parts, built once per process in dependency order; each registers its own shutdown
 * step, so the sequence closes them in reverse.
 */
export async function startRuntime(
  config: Config,
  logger: Logger,
  shutdown: ShutdownSequence,
  options: { allowEmbedded: boolean },
): Promise<Runtime> {
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    if (!options.allowEmbedded) throw new Error('DATABASE_URL is required for this process');
    // Loaded only when used: the package installs exit hooks on import that would cut short
    // the graceful shutdown of servers that run against a real DATABASE_URL.
    const { startEmbeddedPostgres } = await import('./db/embedded.ts');
    const embedded = await startEmbeddedPostgres({
      dataDir: config.DATA_DIR,
      port: config.EMBEDDED_PG_PORT,
      logger,
    });
    shutdown.add('embedded postgres', () => embedded.stop());
    databaseUrl = embedded.connectionString;
  }
  const { deps, close } = connectDeps(config, logger, databaseUrl);
  shutdown.add('database pool and redis', close);
  if (config.MIGRATE_ON_START) {
    const applied = await migrateToLatest(deps.db);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  return { deps, databaseUrl };
}
