import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

export const DEBUG_HEADER = 'x-quire-debug';

/**
 * Per request: one log line (operation, duration, SQL statements, status), the duration and SQL
 * histograms, a warning past the SQL threshold (the N+1 detector), and with the debug header the
 * SQL count (`extensions.sql`) and cache hits/misses (`extensions.cache`) in the response.
 */
export function useRequestStats(options: {
  logger: Logger;
  metrics: Metrics;
  warnThreshold: number;
}): Plugin<Context> {
  const { logger, metrics } = options;
  const started = new WeakMap<Request, number>();
  const contexts = new WeakMap<Request, Context>();
  return {
    onRequest({ request }) {
      started.set(request, performance.now());
    },
    onExecute({ args }) {
      const ctx = args.contextValue as Context & { request?: Request };
      if (ctx.request) contexts.set(ctx.request, ctx);
      return {
        onExecuteDone({ result, setResult }) {
          if (!('data' in result || 'errors' in result)) return;
          const queries = ctx.sql.queries;
          if (queries > options.warnThreshold) {
            logger.warn(
              { operation: args.operationName ?? null, sqlQueries: queries },
              'request exceeded the SQL statement threshold (possible N+1)',
            );
          }
          if (ctx.request?.headers.get(DEBUG_HEADER) === '1') {
            setResult({
              ...result,
              extensions: { ...result.extensions, sql: { queries }, cache: ctx.cacheStats },
            });
          }
        },
      };
    },
    onSubscribe() {
      return {
        onSubscribeResult() {
          metrics.activeSubscriptions.inc();
          return { onEnd: () => metrics.activeSubscriptions.dec() };
        },
      };
    },
    onResponse({ request, response }) {
      const start = started.get(request);
      const url = new URL(request.url);
      if (start === undefined || url.pathname !== '/graphql') return;
      const durationMs = performance.now() - start;
      const ctx = contexts.get(request);
      const operation =
        (ctx as { params?: { operationName?: string } } | undefined)?.params?.operationName ??
        'anonymous';
      const status = String(response.status);
      metrics.requestDuration.observe({ operation, status }, durationMs / 1000);
      if (ctx) metrics.sqlPerRequest.observe(ctx.sql.queries);
      logger.info(
        {
          operation,
          status: response.status,
          durationMs: Math.round(durationMs * 10) / 10,
          sqlQueries: ctx?.sql.queries ?? 0,
        },
        'request',
      );
    },
  };
}
