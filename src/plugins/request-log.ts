import { randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { SqlStats } from '../db/database.ts';
import type { Logger } from '../infra/logger.ts';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Short and plain, so a client's id is safe to echo in a header and to write into logs. */
const WELL_FORMED_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's request id when well formed (1–128 of `A-Z a-z 0-9 . _ : -`), else a new UUID. */
export function requestId(given: string | null | undefined): string {
  return given && WELL_FORMED_ID.test(given) ? given : randomUUID();
}

const maskedCauses = new WeakMap<Error, unknown>();

/**
 * Called where errors are masked: remembers what a masked error hides (the resolver's own error
 * when graphql-js wrapped it), so the request log can report the cause with its stack.
 */
export function rememberMaskedCause(masked: Error, error: unknown): void {
  maskedCauses.set(masked, (error instanceof GraphQLError && error.originalError) || error);
}

/**
 * One line per error of a result as it leaves the server: the cause of each masked (unexpected)
 * error at error level, of each server-side error given a code of its own (TIMEOUT) at warn,
 * every other error (a client error with its code) at debug.
 */
export function logResultErrors(log: Logger, errors: readonly unknown[] | undefined): void {
  for (const error of errors ?? []) {
    if (!(error instanceof GraphQLError)) continue;
    if (maskedCauses.has(error)) {
      const code = error.extensions?.code;
      if (code === 'INTERNAL_SERVER_ERROR')
        log.error({ err: maskedCauses.get(error) }, 'unexpected error (masked in the response)');
      else
        log.warn(
          { err: maskedCauses.get(error), code, path: error.path },
          'server-side error (its code in the response)',
        );
    } else {
      log.debug(
        { code: error.extensions?.code, error: error.message, path: error.path },
        'client error',
      );
    }
  }
}

/**
 * One request's entry, kept on yoga's per-request server context (also the context its operation
 * executes with; a WeakMap keyed by the Request cost about a microsecond per request, mostly in
 * the garbage collector): its id, its logger made on first use (pino's `child` serializes its
 * bindings at once, and most requests never write a line: the request line itself is info, off
 * in many deployments), and for a GraphQL request what plugins/request-stats.ts records.
 */
export class RequestEntry {
  #log: Logger | undefined;
  /** The operation that executed (or was answered early), named by its document. */
  operation: string | undefined;
  /** The executing context, once the operation executes. */
  ctx: Context | undefined;
  /** Answered before execution (a response-cache hit): the statements its context made. */
  early: SqlStats | undefined;
  constructor(
    readonly id: string,
    readonly parent: Logger,
    /** performance.now() at arrival for a GraphQL request (timed and logged); else undefined. */
    readonly start: number | undefined,
  ) {}
  get log(): Logger {
    this.#log ??= this.parent.child({ reqId: this.id });
    return this.#log;
  }
}

const REQUEST_ENTRY = Symbol('quire.request');
type WithRequestEntry = { [REQUEST_ENTRY]?: RequestEntry };

/**
 * The request's entry once useRequestLog has seen the request: `context` is the request's server
 * context or its GraphQL context (the same object).
 */
export function requestEntry(context: object): RequestEntry | undefined {
  return (context as WithRequestEntry)[REQUEST_ENTRY];
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
  const entry = requestEntry(serverContext);
  if (entry?.start === undefined) return;
  entry.operation = operation;
  entry.early = sql;
}

/**
 * The context's `log`, the request's logger made when first read; assignable (src/http.ts gives
 * graphql-ws operations their own). One descriptor for every context, read through the context's
 * entry, rather than a getter and setter made per request.
 */
const lazyLog: PropertyDescriptor & ThisType<WithRequestEntry> = {
  configurable: true,
  enumerable: true,
  get() {
    return this[REQUEST_ENTRY]?.log;
  },
  set(log: Logger) {
    Object.defineProperty(this, 'log', { value: log, writable: true, enumerable: true });
  },
};

/**
 * Only GraphQL requests are timed and logged (not /health, /ready, /metrics, the dashboard): the
 * paths yoga serves as its endpoint, with or without a trailing slash (its unhandled-route check),
 * so no request is answered without a line.
 */
const GRAPHQL_PATH = '/graphql';
const GRAPHQL_PATH_SLASH = `${GRAPHQL_PATH}/`;

/**
 * Gives every HTTP request an id (`x-request-id` when well formed, else generated), echoed in the
 * response, and a pino child logger carrying it: on the context as `log`, and for the errors of
 * every result (SSE events included) as they are sent. graphql-ws operations: src/http.ts.
 * A GraphQL request's entry also times it; `record` (plugins/request-stats.ts) gets it with the
 * response, in this plugin's one onResponse.
 */
export function useRequestLog(
  logger: Logger,
  record: (entry: RequestEntry, response: Response) => void,
): Plugin<{ log: Logger }> {
  const entryFor = (serverContext: object, request: Request) => {
    const holder = serverContext as WithRequestEntry;
    holder[REQUEST_ENTRY] ??= new RequestEntry(
      requestId(request.headers.get(REQUEST_ID_HEADER)),
      logger,
      undefined,
    );
    return holder[REQUEST_ENTRY];
  };
  return {
    onRequest({ request, url, serverContext }) {
      // yoga serves every path ending in its endpoint as it (its unhandled-route check): the
      // string test spares most requests a parsed URL, which `url` builds on first read.
      if (
        request.url.endsWith(GRAPHQL_PATH) ||
        request.url.endsWith(GRAPHQL_PATH_SLASH) ||
        url.pathname === GRAPHQL_PATH ||
        url.pathname === GRAPHQL_PATH_SLASH
      ) {
        (serverContext as WithRequestEntry)[REQUEST_ENTRY] = new RequestEntry(
          requestId(request.headers.get(REQUEST_ID_HEADER)),
          logger,
          performance.now(),
        );
      }
    },
    onContextBuilding({ context }) {
      const { request } = context as { request?: Request };
      if (!request) return;
      entryFor(context, request);
      Object.defineProperty(context, 'log', lazyLog);
    },
    onResultProcess({ request, result, setResult, serverContext }) {
      const entry = entryFor(serverContext, request);
      if (isAsyncIterable(result)) {
        setResult(
          mapAsyncIterator(result, (event) => {
            if (event.errors) logResultErrors(entry.log, event.errors);
            return event;
          }),
        );
        return;
      }
      for (const single of Array.isArray(result) ? result : [result]) {
        if (single.errors) logResultErrors(entry.log, single.errors);
      }
    },
    onResponse({ request, response, serverContext }) {
      const entry = entryFor(serverContext, request);
      response.headers.set(REQUEST_ID_HEADER, entry.id);
      if (entry.start !== undefined) record(entry, response);
    },
  };
}
