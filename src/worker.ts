import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './infra/logger.ts';
import { ShutdownSequence } from './infra/shutdown.ts';
import { PipelineWorker } from './processing/worker.ts';
import { startRuntime } from './runtime.ts';
import { stopTracing, tracingActive, warnIfTracingNotPreloaded } from './tracing.ts';

/** `npm run worker`: pipeline execution only, any number of processes beside the API. */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.REDIS_URL) {
    // Without Redis its progress events and cache invalidations would stay in this process.
    throw new ConfigError(
      'REDIS_URL is required for npm run worker: it reaches API subscribers and caches through Redis (or run the worker inside the API process with WORKER=on)',
    );
  }
  const logger = createLogger(config);
  const shutdown = new ShutdownSequence(logger);
  warnIfTracingNotPreloaded(logger);
  // Registered first, so it runs last: the spans of everything shut down before are exported.
  if (tracingActive()) shutdown.add('traces', stopTracing);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void shutdown.run().then((ok) => process.exit(ok ? 0 : 1)));
  }
  const { deps } = await startRuntime(config, logger, shutdown, {
    allowEmbedded: false,
  });
  const worker = new PipelineWorker(deps);
  await worker.start();
  shutdown.add('pipeline worker', () => worker.stop());
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
