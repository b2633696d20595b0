import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';

const LAST_EVENT_ID = 'last-event-id';

/** The serialized `data` of each shared result, `id:` line included, so N subscribers cost one. */
const serialized = new WeakMap<ExecutionResult, string>();

/**
 * yoga's SSE processor writes `data: ${result.stringify(sanitized)}` (`sanitized`: the result
 * without internal error fields): this appends an `id: <event id>` line to the data of a result
 * whose payload names one (`data.<field>.id`), so the event carries its id in the same write
 * with no re-parsing of the stream (a field after `data` is valid SSE).
 */
function withEventId(result: ExecutionResult): ExecutionResult {
  const wrapped: ExecutionResult & { stringify?: unknown } = { ...result };
  wrapped.stringify = (sanitized: ExecutionResult) => {
    // yoga passes the wrapper itself when it had nothing to strip.
    const shared = sanitized === wrapped;
    let text = shared ? serialized.get(result) : undefined;
    if (text === undefined) {
      const data = result.data as Record<string, { id?: unknown } | null> | null | undefined;
      const id = Object.values(data ?? {})[0]?.id;
      text = JSON.stringify(sanitized) + (typeof id === 'string' ? `\nid: ${id}` : '');
      if (shared) serialized.set(result, text);
    }
    return text;
  };
  return wrapped;
}

/**
 * The `Last-Event-ID` header of the HTTP request behind a context (an EventSource reconnect sends
 * the last `id:` it received), or null: absent, empty, or not over HTTP (graphql-ws). The fields
 * that resume read it themselves (see `resumeAfter` in pipeline.stream.ts), so it applies however
 * the document writes their argument.
 */
export function lastEventId(context: object): string | null {
  const { request } = context as { request?: Request };
  return request?.headers.get(LAST_EVENT_ID) || null;
}

/**
 * SSE for browsers and proxies: no proxy buffering and `id:` on events that carry one (see
 * `withEventId`), so an
 * EventSource reconnect can resume after the last event it received. Every stream answers 200:
 * the graphql-sse protocol reports errors found before execution (parse, validation, limits,
 * token) as a `next` event in an accepted stream, since a user agent fails a non-2xx
 * event stream without reading it; yoga would give the stream the errors' status.
 */
export function useSse(): Plugin {
  return {
    onSubscribe: () => ({
      // Over HTTP a subscription's stream is always SSE (yoga's only processor for streams of
      // subscriptions); graphql-ws contexts have no request.
      onSubscribeResult({ args, result, setResult }) {
        if (!(args.contextValue as { request?: Request }).request) return;
        if (isAsyncIterable<ExecutionResult>(result))
          setResult(mapAsyncIterator(result, withEventId));
      },
    }),
    onResponse({ response, setResponse, fetchAPI }) {
      if (!response.headers.get('content-type')?.includes('text/event-stream') || !response.body)
        return;
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('x-accel-buffering', 'no');
      headers.set('cache-control', 'no-cache, no-transform');
      setResponse(new fetchAPI.Response(response.body, { status: 200, headers }));
    },
  };
}
