import type { Plugin } from 'graphql-yoga';

const LAST_EVENT_ID = 'last-event-id';

/** Adds `id: <event id>` to each SSE `next` event whose payload names one (`data.<field>.id`). */
function withEventIds(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffer = '';
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const block = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          controller.enqueue(encoder.encode(tagged(block)));
          end = buffer.indexOf('\n\n');
        }
      },
      flush(controller) {
        if (buffer) controller.enqueue(encoder.encode(buffer));
      },
    }),
  );
}

function tagged(block: string): string {
  if (!block.startsWith('event: next\n')) return block;
  const data = block.slice(block.indexOf('data: ') + 6);
  try {
    const payload = JSON.parse(data) as { data?: Record<string, { id?: unknown } | null> };
    const id = Object.values(payload.data ?? {})[0]?.id;
    return typeof id === 'string' ? `id: ${id}\n${block}` : block;
  } catch {
    return block;
  }
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
 * event stream without reading it; yoga would give the stream the errors' status.
 */
export function useSse(): Plugin {
  return {
    onResponse({ response, setResponse, fetchAPI }) {
      if (!response.headers.get('content-type')?.includes('text/event-stream') || !response.body)
        return;
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('x-accel-buffering', 'no');
      headers.set('cache-control', 'no-cache, no-transform');
      setResponse(new fetchAPI.Response(withEventIds(response.body), { status: 200, headers }));
    },
  };
}
