import { randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';
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
 * A request's id, and its logger, made on first use: pino's `child` serializes its bindings at
 * once, and most requests never write a line (the request line itself is info, off in many
 * deployments).
 */
class RequestLog {
  #log: Logger | undefined;
  constructor(
    readonly id: string,
    readonly parent: Logger,
  ) {}
  get log(): Logger {
    this.#log ??= this.parent.child({ reqId: this.id });
    return this.#log;
  }
}

/**
 * Where a request's entry is kept: on yoga's per-request server context, which is also the
 * context its operation executes with. A WeakMap keyed by the Request cost about a microsecond
 * per request, mostly in the garbage collector (every short-lived key is an ephemeron).
 */
const REQUEST_LOG = Symbol('quire.requestLog');
type WithRequestLog = { [REQUEST_LOG]?: RequestLog };

/**
 * The request's logger (its lines carry `reqId`), once useRequestLog has seen the request:
 * `context` is the request's server context or its GraphQL context (the same object).
 */
export function requestLogger(context: object): Logger | undefined {
  return (context as WithRequestLog)[REQUEST_LOG]?.log;
}

/**
 * The context's `log`, the request's logger made when first read; assignable (src/http.ts gives
 * graphql-ws operations their own). One descriptor for every context, read through the context's
 * entry, rather than a getter and setter made per request.
 */
const lazyLog: PropertyDescriptor & ThisType<WithRequestLog> = {
  configurable: true,
  enumerable: true,
  get() {
    return this[REQUEST_LOG]?.log;
  },
  set(log: Logger) {
    Object.defineProperty(this, 'log', { value: log, writable: true, enumerable: true });
  },
};

/**
 * Gives every HTTP request an id (`x-request-id` when well formed, else generated), echoed in the
 * response, and a pino child logger carrying it: on the context as `log`, and for the errors of
 * every result (SSE events included) as they are sent. graphql-ws operations: src/http.ts.
 */
export function useRequestLog(logger: Logger): Plugin<{ log: Logger }> {
  const logFor = (serverContext: object, request: Request) => {
    const holder = serverContext as WithRequestLog;
    holder[REQUEST_LOG] ??= new RequestLog(
      requestId(request.headers.get(REQUEST_ID_HEADER)),
      logger,
    );
    return holder[REQUEST_LOG];
  };
  // No onRequest: the entry is made where first needed (every response reaches onResponse), and a
  // hook on every request is a call and a payload of yoga's per request.
  return {
    onContextBuilding({ context }) {
      const { request } = context as { request?: Request };
      if (!request) return;
      logFor(context, request);
      Object.defineProperty(context, 'log', lazyLog);
    },
    onResultProcess({ request, result, setResult, serverContext }) {
      const entry = logFor(serverContext, request);
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
      response.headers.set(REQUEST_ID_HEADER, logFor(serverContext, request).id);
    },
  };
}
