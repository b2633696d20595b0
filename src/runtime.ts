import type pg from 'pg';
import type { Config } from './config.ts';
import type { AppDeps } from './context.ts';
import {
  closeDatabase,
  createDatabase,
  createMigrationDatabase,
  createPool,
} from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { notifyCacheRenewal } from './infra/cache-notifications.ts';
import { registerBreakerMetrics } from './infra/circuit-breaker.ts';
import type { Logger } from './infra/logger.ts';
import { Metrics } from './infra/metrics.ts';
import { createSharedState } from './infra/shared-state.ts';
import type { ShutdownSequence } from './infra/shutdown.ts';
import { ViewerStreams } from './modules/auth/viewer-streams.ts';
import { countQueuedRuns } from './modules/pipeline/pipeline.repository.ts';
import { loadTrustedDocuments } from './plugins/persisted-operations.ts';

export interface Runtime {
  deps: AppDeps;
}

/**
 * Pool, Kysely, Redis-backed state, metrics and the trusted documents (read first: a bad manifest
 * throws ConfigError before anything connects) for one database; `close` releases them.
 */
export function connectDeps(
  config: Config,
  logger: Logger,
  databaseUrl: string,
): { deps: AppDeps; pool: pg.Pool; close(): Promise<void> } {
  const trustedDocuments = config.TRUSTED_DOCUMENTS
    ? loadTrustedDocuments(config.TRUSTED_DOCUMENTS)
    : undefined;
  if (trustedDocuments) {
    const development = config.NODE_ENV === 'development';
    logger[development ? 'warn' : 'info'](
      { manifest: config.TRUSTED_DOCUMENTS, operations: trustedDocuments.size },
      development
        ? 'trusted documents loaded; NODE_ENV=development still runs other documents (GraphiQL)'
        : 'trusted documents loaded: only these operations run',
    );
  }
  const pool = createPool(databaseUrl, config);
  const db = createDatabase(pool, logger, config, () => metrics.sqlStatements.inc());
  const { close, redisBreakers, signals, ...shared } = createSharedState(config, logger, {
    pool,
    url: databaseUrl,
  });
  const metrics = new Metrics({ pool, ...shared, queueDepth: () => countQueuedRuns(db) });
  registerBreakerMetrics(metrics.registry, redisBreakers);
  const viewerStreams = new ViewerStreams({
    db,
    pubsub: signals,
    logger,
    cache: shared.cache,
  });
  return {
    deps: { config, logger, db, metrics, viewerStreams, trustedDocuments, ...shared },
    pool,
    async close() {
      await close();
      await closeDatabase(db, pool);
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
  options: { allowEmbedded: boolean; handlesSignals?: boolean },
): Promise<Runtime> {
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    if (!options.allowEmbedded) throw new Error('DATABASE_URL is required for this process');
    // Loaded only when used: the package installs exit hooks on import that would cut short
    // the graceful shutdown of servers that run against a real DATABASE_URL. A process with its
    // own shutdown sequence drops its signal hooks too: they would kill Postgres under the open
    // pool and exit with 128 + signal before the sequence ran (its `exit` hook stays, a backstop).
    const hooked: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const before = new Map(hooked.map((event) => [event, new Set(process.listeners(event))]));
    const { startEmbeddedPostgres } = await import('./db/embedded.ts');
    if (options.handlesSignals) {
      for (const event of hooked) {
        for (const listener of process.listeners(event)) {
          if (!before.get(event)!.has(listener)) process.off(event, listener);
        }
      }
    }
    const embedded = await startEmbeddedPostgres({
      dataDir: config.DATA_DIR,
      port: config.EMBEDDED_PG_PORT,
      logger,
    });
    shutdown.add('embedded postgres', () => embedded.stop());
    databaseUrl = embedded.connectionString;
  }
  const { deps, pool, close } = connectDeps(config, logger, databaseUrl);
  shutdown.add('database pool and redis', close);
  if (config.MIGRATE_ON_START) {
    const applied = await migrateToLatest(createMigrationDatabase(pool, logger, config));
    if (applied.length > 0) {
      logger.info({ applied }, 'migrations applied');
      // Running servers may hold entries shaped by the old schema (without Redis: over Postgres).
      if (!config.REDIS_URL) await notifyCacheRenewal(pool);
    }
  }
  return { deps };
}
