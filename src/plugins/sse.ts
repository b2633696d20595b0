import { Readable } from 'node:stream';
import type { ExecutionResult, GraphQLError } from 'graphql';
import { type FetchAPI, isAsyncIterable, type Plugin } from 'graphql-yoga';

const LAST_EVENT_ID = 'last-event-id';

const encoder = new TextEncoder();
const PING = encoder.encode(':\n\n');
const COMPLETE = encoder.encode('event: complete\ndata:\n\n');
/** As yoga's SSE processor: a comment every 12 s keeps proxies from closing an idle stream. */
const PING_MS = process.env.NODE_ENV === 'test' ? 300 : 12_000;

/** The bytes of each result's SSE event: a result shared by N streams is encoded once. */
const encodedEvents = new WeakMap<ExecutionResult, Uint8Array>();

/** An error as the client sees it: without yoga's internal `http` and `unexpected` extensions. */
function withoutInternals(error: GraphQLError): unknown {
  if (typeof error.toJSON !== 'function') return error;
  const json = error.toJSON();
  const { http: _http, unexpected: _unexpected, ...extensions } = json.extensions ?? {};
  return { ...json, extensions: Object.keys(extensions).length > 0 ? extensions : undefined };
}

/**
 * One `next` event as one chunk, hence one socket write: `id: <event id>` when the payload names
 * one (`data.<field>.id`), so an EventSource reconnect resumes after it.
 */
function eventBytes(result: ExecutionResult): Uint8Array {
  let bytes = encodedEvents.get(result);
  if (!bytes) {
    const data = result.data as Record<string, { id?: unknown } | null> | null | undefined;
    const id = Object.values(data ?? {})[0]?.id;
    const { extensions, ...rest } = result;
    const { http: _http, ...visible } = (extensions ?? {}) as Record<string, unknown>;
    const sent = {
      ...rest,
      ...(result.errors ? { errors: result.errors.map(withoutInternals) } : {}),
      ...(Object.keys(visible).length > 0 ? { extensions: visible } : {}),
    };
    bytes = encoder.encode(
      `${typeof id === 'string' ? `id: ${id}\n` : ''}event: next\ndata: ${JSON.stringify(sent)}\n\n`,
    );
    encodedEvents.set(result, bytes);
  }
  return bytes;
}

/**
 * yoga's SSE processor for a subscription's stream, with each event written as one chunk (yoga
 * enqueues `event:` and `data:` apart, two socket writes) and its `id:` in it (instead of
 * decoding, re-parsing and re-encoding the whole stream to add it).
 *
 * The body is a Node Readable that the stream's events are pushed into as they come: piped to the
 * socket, each push is written at once, without the ReadableStream's pull promise and controller
 * per event (a sizable share of fan-out's CPU with a thousand streams). Backpressure: events are
 * taken from the subscription only while the body's buffer is under its high-water mark (16 KiB),
 * which fills once the socket's does; a slow client then leaves its events in the subscription's
 * own bounded buffer (see the pipelineRun stream).
 */
function processSseStream(
  result: AsyncIterable<ExecutionResult>,
  fetchAPI: { Response: typeof Response },
): Response {
  const iterator = result[Symbol.asyncIterator]();
  let pulling = false;
  let closed = false;
  const close = () => {
    closed = true;
    clearInterval(ping);
  };
  const pull = () => {
    pulling = true;
    iterator.next().then(
      (next) => {
        if (closed) return;
        const more = next.value == null || body.push(eventBytes(next.value));
        if (next.done) {
          close();
          body.push(COMPLETE);
          body.push(null);
          return;
        }
        pulling = false;
        if (more) pull();
      },
      (error: unknown) => {
        close();
        body.destroy(error as Error);
      },
    );
  };
  const body = new Readable({
    read() {
      if (!pulling && !closed) pull();
    },
    destroy(error, callback) {
      const open = !closed;
      close();
      if (open) Promise.resolve(iterator.return?.()).catch(() => {});
      callback(error);
    },
  });
  // Some browsers hold the fetch until the first bytes arrive.
  body.push(PING);
  const ping = setInterval(() => {
    if (!closed && body.readableLength === 0) body.push(PING);
  }, PING_MS);
  return new fetchAPI.Response(body as unknown as BodyInit, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream',
      connection: 'keep-alive',
      'cache-control': 'no-cache',
      'content-encoding': 'none',
    },
  });
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
 * SSE for browsers and proxies: no proxy buffering and `id:` on events that carry one, so an
 * EventSource reconnect can resume after the last event it received. Every stream answers 200:
 * the graphql-sse protocol reports errors found before execution (parse, validation, limits,
 * token) as a `next` event in an accepted stream, since a user agent fails a non-2xx
 * event stream without reading it; yoga would give the stream the errors' status. The response's
 * headers and status: `sseResponse`.
 */
export function useSse(): Plugin {
  const subscriptionRequests = new WeakSet<Request>();
  return {
    onSubscribe({ args }) {
      const { request } = args.contextValue as { request?: Request };
      if (request) subscriptionRequests.add(request);
    },
    onResultProcess({ request, result, resultProcessor, setResultProcessor }) {
      // yoga picked its SSE processor: for a subscription's stream it is the only one it has.
      if (resultProcessor) {
        if (subscriptionRequests.has(request) && isAsyncIterable(result))
          setResultProcessor(
            (stream, fetchAPI) =>
              processSseStream(stream as AsyncIterable<ExecutionResult>, fetchAPI),
            'text/event-stream',
          );
        return;
      }
      // No processor for the Accept header (a subscription to a JSON-only client): yoga answers
      // 406 and never reads the stream, whose subscription stayed open (and counted) for good.
      if (isAsyncIterable(result)) {
        const closing = result[Symbol.asyncIterator]().return?.();
        // Nobody waits for it: a failure to close has no one to tell.
        closing?.catch(() => undefined);
      }
    },
  };
}

/**
 * An SSE response as browsers and proxies need it, or undefined for any other response: no
 * proxy buffering and no transformation, and status 200 (see useSse). Called from the one
 * onResponse hook that also compresses JSON (`encode` in http-guards.ts).
 */
export function sseResponse(response: Response, fetchAPI: FetchAPI): Response | undefined {
  if (!response.headers.get('content-type')?.includes('text/event-stream') || !response.body)
    return undefined;
  const headers = new fetchAPI.Headers(response.headers);
  headers.set('x-accel-buffering', 'no');
  headers.set('cache-control', 'no-cache, no-transform');
  return new fetchAPI.Response(response.body, { status: 200, headers });
}
