import { type ExecutionResult, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { Logger } from '../infra/logger.ts';
import type { Metrics } from '../infra/metrics.ts';
import {
  type DebugLevel,
  debugLevel,
  maySeeStatements,
  reportStatements,
} from '../infra/sql-debug.ts';
import { type RequestEntry, requestEntry } from './request-log.ts';

export const DEBUG_HEADER = 'x-quire-debug';

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
 * Per request: one log line (operation, duration, SQL statements, status), the duration and SQL
 * histograms, a warning past the SQL threshold (the N+1 detector), and with the debug header the
 * SQL count (`extensions.sql.queries`) and cache hits/misses (`extensions.cache`) in the
 * response. An ADMIN (anyone in development) also gets the statements' text and durations
 * (`extensions.sql.statements`), and with `x-quire-debug: explain` the plans of its SELECTs.
 */
export function requestStats(options: {
  logger: Logger;
  metrics: Metrics;
  warnThreshold: number;
}): {
  /** Notes what each operation executes (or subscribes to), and adds the debug extensions. */
  plugin: Plugin<Context>;
  /** Given useRequestLog's entry of each GraphQL request with its response, in its onResponse. */
  record(entry: RequestEntry, response: Response): void;
} {
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
  const plugin: Plugin<Context> = {
    onExecute({ args }) {
      const ctx = args.contextValue as Context & { request?: Request };
      // The document names the operation even when the request's `operationName` is left out.
      const operation = getOperationAST(args.document, args.operationName)?.name?.value;
      const entry = requestEntry(ctx);
      if (entry) {
        entry.ctx = ctx;
        entry.operation = operation;
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
      const ctx = args.contextValue as Context;
      const entry = requestEntry(ctx);
      if (entry) {
        entry.ctx = ctx;
        entry.operation = getOperationAST(args.document, args.operationName)?.name?.value;
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
  };
  const record = (entry: RequestEntry, response: Response) => {
    const durationMs = performance.now() - entry.start!;
    const { ctx, operation } = entry;
    const status = String(response.status);
    metrics.requestDuration.observe(
      { operation: operationLabel(operation), status },
      durationMs / 1000,
    );
    const sql = ctx?.sql ?? entry.early;
    if (sql) metrics.sqlStatementsPerRequest.observe(sql.queries);
    // Checked first: reading the request's logger makes it.
    if (!logger.isLevelEnabled('info')) return;
    (ctx?.log ?? entry.log).info(
      {
        operation: operation?.slice(0, 200) ?? 'anonymous',
        status: response.status,
        durationMs: Math.round(durationMs * 10) / 10,
        sqlQueries: sql?.queries ?? 0,
        ...(entry.early ? { answeredEarly: true } : {}),
      },
      'request',
    );
  };
  return { plugin, record };
}
