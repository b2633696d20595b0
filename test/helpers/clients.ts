import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface StreamedResult {
  data?: Record<string, any> | null;
  errors?: { message: string; extensions?: Record<string, any> }[];
}

/** One `next` event of an SSE stream: its `id:` line (absent when the event has none) and result. */
export interface SseEvent {
  id?: string;
  result: StreamedResult;
}

/**
 * A real SSE client: POSTs with Accept: text/event-stream and parses the stream as it arrives,
 * yielding each `next` event with its `id:` line. Stops when the server completes the stream,
 * or on `signal`.
 */
export async function* sseEvents(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  options: { token?: string; signal?: AbortSignal; operationName?: string } = {},
): AsyncGenerator<SseEvent> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify({ query, variables, operationName: options.operationName }),
      signal: options.signal,
    });
  } catch (error) {
    // Aborted before the response reached the client (the server may have sent it already).
    if (options.signal?.aborted) return;
    throw error;
  }
  if (!response.ok || !response.body) throw new Error(`SSE request failed: ${response.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const id = /^id: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (event === 'complete') return;
        if (event === 'next' && data)
          yield { ...(id === undefined ? {} : { id }), result: JSON.parse(data) as StreamedResult };
      }
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
  }
}

/** `sseEvents` without the `id:` lines: the results only. */
export async function* sseSubscribe(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  options: { token?: string; signal?: AbortSignal; operationName?: string } = {},
): AsyncGenerator<StreamedResult> {
  for await (const event of sseEvents(url, query, variables, options)) yield event.result;
}

/** A real graphql-ws client over a real WebSocket. */
export function wsSubscribe(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  options: { token?: string; operationName?: string; extensions?: Record<string, unknown> } = {},
): AsyncGenerator<StreamedResult> & { dispose(): Promise<void> } {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
    retryAttempts: 0,
  });
  const iterator = client.iterate({
    query,
    variables,
    operationName: options.operationName,
    extensions: options.extensions,
  }) as AsyncGenerator<StreamedResult>;
  return Object.assign(iterator, { dispose: () => client.dispose() as Promise<void> });
}

export async function take<T>(
  iterator: AsyncIterable<T>,
  count: number,
  until?: (item: T) => boolean,
): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterator) {
    items.push(item);
    if (items.length >= count || until?.(item)) break;
  }
  return items;
}
