import { type ExecutionResult, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { SqlStats } from '../db/database.ts';
import type { Logger } from '../infra/logger.ts';
import type { Metrics } from '../infra/metrics.ts';
import {
  type DebugLevel,
  debugLevel,
  maySeeStatements,
  reportStatements,
} from '../infra/sql-debug.ts';
import { requestLogger } from './request-log.ts';

export const DEBUG_HEADER = 'x-quire-debug';
/** Only GraphQL requests are timed and logged (not /health, /ready, /metrics, the dashboard). */
const GRAPHQL_PATH = '/graphql';

/** One GraphQL request, from its arrival; what it executed once it has. */
interface RequestStats {
  start: number;
  ctx?: Context;
  operation?: string;
  /** Answered before execution (a response-cache hit): the statements its context made. */
  early?: SqlStats;
}

/**
 * Where a GraphQL request's stats are kept: on yoga's per-request server context, which is also
 * the context its operation executes with (a WeakMap keyed by the Request cost about a
 * microsecond per request, mostly in the garbage collector).
 */
const REQUEST_STATS = Symbol('quire.requestStats');
type WithRequestStats = { [REQUEST_STATS]?: RequestStats };

const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_OPERATION_LABELS = 200;

/**
 * The operation name is chosen by the client: as a metric label it is capped to well-formed
 * names and to the first MAX_OPERATION_LABELS distinct ones, so no client can grow the series
 * (and /metrics) without bound. The log line keeps the name (its first 200 characters).
 */
function operationLabeler(): (operationName: string | undefined) => string {
  const seen = new Set<string>();
  return (operationName) => {
    if (operationName === undefined) return 'anonymous';
    if (seen.has(operationName)) return operationName;
    if (!OPERATION_NAME.test(operationName) || seen.size >= MAX_OPERATION_LABELS) return 'other';
    seen.add(operationName);
    return operationName;
  };
}

/**
 * `source`, calling `onEnd` once when it ends, however it ends: done, an error from `next()`
 * (envelop's `onEnd` misses that one), `return()` or `throw()`.
 */
function whenEnded<T>(source: AsyncIterable<T>, onEnd: () => void): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    // `.then` rather than an async function: one promise per event less, on every stream.
    next() {
      return iterator.next().then(
        (result) => {
          if (result.done) end();
          return result;
        },
        (error: unknown) => {
          end();
          throw error;
        },
      );
    },
    async return(value?: unknown) {
      end();
      return (await iterator.return?.(value)) ?? { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      end();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
  };
}

/**
 * Records a request answered before its operation executed (the response cache's early hit),
 * for its log line and metrics: its operation, and the statements its context made (a token
 * lookup past the viewer cache).
 */
export function recordAnsweredEarly(
  serverContext: object,
  operation: string | undefined,
  sql: SqlStats,
): void {
  const stats = (serverContext as WithRequestStats)[REQUEST_STATS];
  if (stats === undefined) return;
  stats.operation = operation;
  stats.early = sql;
}

/**
 * Per request: one log line (operation, duration, SQL statements, status), the duration and SQL
 * histograms, a warning past the SQL threshold (the N+1 detector), and with the debug header the
 * SQL count (`extensions.sql.queries`) and cache hits/misses (`extensions.cache`) in the
 * response. An ADMIN (anyone in development) also gets the statements' text and durations
 * (`extensions.sql.statements`), and with `x-quire-debug: explain` the plans of its SELECTs.
 */
export function useRequestStats(options: {
  logger: Logger;
  metrics: Metrics;
  warnThreshold: number;
}): Plugin<Context> {
  const { logger, metrics } = options;
  const operationLabel = operationLabeler();
  /** Runs only with the debug header: the common result passes through without a promise. */
  const withDebugExtensions = async (
    ctx: Context,
    debug: DebugLevel,
    result: ExecutionResult,
    setResult: (result: ExecutionResult) => void,
  ) => {
    const statements = maySeeStatements(ctx.viewer?.role, ctx.config.NODE_ENV)
      ? { statements: await reportStatements(ctx.deps.db, ctx.sql.statements, debug) }
      : {};
    setResult({
      ...result,
      extensions: {
        ...result.extensions,
        sql: { queries: ctx.sql.queries, ...statements },
        cache: ctx.cacheStats,
      },
    });
  };
  return {
    onRequest({ request, url, serverContext }) {
      // yoga serves every path ending in its endpoint as it (its unhandled-route check): the
      // string test spares most requests a parsed URL, which `url` builds on first read.
      if (request.url.endsWith(GRAPHQL_PATH) || url.pathname === GRAPHQL_PATH)
        (serverContext as WithRequestStats)[REQUEST_STATS] = { start: performance.now() };
    },
    onExecute({ args }) {
      const ctx = args.contextValue as Context & { request?: Request } & WithRequestStats;
      // The document names the operation even when the request's `operationName` is left out.
      const operation = getOperationAST(args.document, args.operationName)?.name?.value;
      const stats = ctx[REQUEST_STATS];
      if (stats) {
        stats.ctx = ctx;
        stats.operation = operation;
      }
      return {
        onExecuteDone({ result, setResult }) {
          if (!('data' in result || 'errors' in result)) return;
          const queries = ctx.sql.queries;
          if (queries > options.warnThreshold) {
            ctx.log.warn(
              { operation: operation ?? null, sqlQueries: queries },
              'request exceeded the SQL statement threshold (possible N+1)',
            );
          }
          const debug = debugLevel(ctx.request?.headers.get(DEBUG_HEADER) ?? null);
          if (debug) return withDebugExtensions(ctx, debug, result, setResult);
        },
      };
    },
    onSubscribe({ args }) {
      // As onExecute: an SSE subscription's request line names its operation too.
      const ctx = args.contextValue as Context & WithRequestStats;
      const stats = ctx[REQUEST_STATS];
      if (stats) {
        stats.ctx = ctx;
        stats.operation = getOperationAST(args.document, args.operationName)?.name?.value;
      }
      return {
        onSubscribeResult({ result, setResult }) {
          // A subscription refused at its start is an error result, not a stream: nothing is open.
          if (!isAsyncIterable(result)) return;
          metrics.activeSubscriptions.inc();
          setResult(whenEnded(result, () => metrics.activeSubscriptions.dec()));
        },
      };
    },
    onResponse({ response, serverContext }) {
      const stats = (serverContext as WithRequestStats)[REQUEST_STATS];
      if (stats === undefined) return;
      const durationMs = performance.now() - stats.start;
      const { ctx, operation } = stats;
      const status = String(response.status);
      metrics.requestDuration.observe(
        { operation: operationLabel(operation), status },
        durationMs / 1000,
      );
      const sql = ctx?.sql ?? stats.early;
      if (sql) metrics.sqlStatementsPerRequest.observe(sql.queries);
      // Checked first: reading the request's logger makes it (plugins/request-log.ts).
      if (!logger.isLevelEnabled('info')) return;
      (ctx?.log ?? requestLogger(serverContext) ?? logger).info(
        {
          operation: operation?.slice(0, 200) ?? 'anonymous',
          status: response.status,
          durationMs: Math.round(durationMs * 10) / 10,
          sqlQueries: sql?.queries ?? 0,
          ...(stats.early ? { answeredEarly: true } : {}),
        },
        'request',
      );
    },
  };
}
