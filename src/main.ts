import { createApp } from './app.ts';
import { type Config, ConfigError, loadConfig } from './config.ts';
import { httpOptions, startHttpServer } from './http.ts';
import { createLogger, type Logger } from './infra/logger.ts';
import { startMetricsServer } from './infra/metrics-server.ts';
import { ShutdownSequence } from './infra/shutdown.ts';
import { PipelineWorker } from './processing/worker.ts';
import { startRuntime } from './runtime.ts';
import { stopTracing, tracingActive, warnIfTracingNotPreloaded } from './tracing.ts';

/** A listen error's own line: which port is taken and the variable that sets it. */
class PortInUse extends Error {}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config);
  const shutdown = new ShutdownSequence(logger);
  try {
    await serve(config, logger, shutdown);
  } catch (error) {
    // What has started (embedded Postgres, pools, the metrics listener) stops before the exit.
    await shutdown.run(config.SHUTDOWN_DEADLINE_MS);
    const { code, port } = error as { code?: string; port?: number };
    if (code !== 'EADDRINUSE') throw error;
    const variable = port === config.METRICS_PORT ? 'METRICS_PORT' : 'PORT';
    throw new PortInUse(`port ${port} is in use: set ${variable}`);
  }
}

async function serve(config: Config, logger: Logger, shutdown: ShutdownSequence): Promise<void> {
  warnIfTracingNotPreloaded(logger);
  // Registered first, so it runs last: the spans of everything shut down before are exported.
  if (tracingActive()) shutdown.add('traces', stopTracing);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      void shutdown.run(config.SHUTDOWN_DEADLINE_MS).then((ok) => process.exit(ok ? 0 : 1));
    });
  }

  const { deps } = await startRuntime(config, logger, shutdown, {
    allowEmbedded: true,
    handlesSignals: true,
  });
  if (config.METRICS_PORT !== undefined) {
    const metricsServer = await startMetricsServer(deps.metrics, {
      port: config.METRICS_PORT,
      host: config.METRICS_HOST ?? config.HOST,
    });
    shutdown.add('metrics listener', () => metricsServer.close());
    logger.info(
      `Prometheus metrics at http://${config.METRICS_HOST ?? config.HOST}:${metricsServer.port}/metrics`,
    );
  }
  const http = await startHttpServer(createApp(deps), httpOptions(config));
  shutdown.add('http server', () => http.close());
  // Started once the port is ours: a port in use must not leave a worker claiming runs.
  const worker = config.WORKER ? new PipelineWorker(deps) : undefined;
  await worker?.start();
  // Stopped before the HTTP server: open streams still deliver the release of its runs.
  if (worker) shutdown.add('pipeline worker', () => worker.stop());
  const base = `http://${config.HOST}:${http.port}`;
  const api =
    (config.GRAPHIQL ?? config.NODE_ENV !== 'production') ? 'GraphiQL and the API' : 'the API';
  // The GraphQL URL stays last: scripts and tests read it as the line's final `at <url>`.
  logger.info(`Quire is serving GraphQL: the dashboard at ${base}/, ${api} at ${base}/graphql`);
}

main().catch((error: unknown) => {
  // A listen or config error must end the process, not leave it lingering on open handles.
  console.error(error instanceof ConfigError || error instanceof PortInUse ? error.message : error);
  process.exit(1);
});
