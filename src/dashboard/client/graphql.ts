/// <reference lib="dom" />
import manifest from '../trusted-documents.json' with { type: 'json' };

const TOKEN_KEY = 'quire.token';

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) ?? '',
  set: (value: string) => localStorage.setItem(TOKEN_KEY, value.trim()),
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const bearer = token.get();
  return {
    'content-type': 'application/json',
    ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    ...extra,
  };
}

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** The manifest read backwards: each dashboard document's hash. */
const hashOf = new Map(Object.entries(manifest).map(([hash, document]) => [document, hash]));

type ErrorList = { message: string; extensions?: { code?: string } }[] | undefined;

/**
 * The bodies to send, in order, for Apollo's persisted-query protocol: the hash alone (what a
 * server in trusted-documents mode accepts, and an APQ server once it knows the document), then
 * with the text if the server answers PersistedQueryNotFound (which registers it on an APQ
 * server). A document missing from the manifest goes as text.
 */
function bodies(query: string, variables: Record<string, unknown>): [string, string?] {
  const sha256Hash = hashOf.get(query);
  if (!sha256Hash) return [JSON.stringify({ query, variables })];
  const extensions = { persistedQuery: { version: 1, sha256Hash } };
  return [
    JSON.stringify({ variables, extensions }),
    JSON.stringify({ query, variables, extensions }),
  ];
}

const persistedQueryNotFound = (errors: ErrorList) =>
  errors?.some((error) => error.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND') ?? false;

async function post<Data>(body: string): Promise<{ data?: Data; errors?: ErrorList }> {
  const response = await fetch('/graphql', { method: 'POST', headers: headers(), body });
  return (await response.json()) as { data?: Data; errors?: ErrorList };
}

export async function request<Data>(
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Data> {
  const [first, withText] = bodies(query, variables);
  let result = await post<Data>(first);
  if (withText && persistedQueryNotFound(result.errors)) result = await post<Data>(withText);
  const [error] = result.errors ?? [];
  if (error) throw new GraphQLRequestError(error.message, error.extensions?.code);
  return result.data as Data;
}

/**
 * A subscription over SSE with fetch (EventSource cannot send the Authorization header). Calls
 * `onNext` per event; resolves when the server completes the stream, rejects when `signal` aborts.
 */
export async function subscribe<Data>(
  query: string,
  variables: Record<string, unknown>,
  onNext: (data: Data) => void,
  signal?: AbortSignal,
): Promise<void> {
  const [first, withText] = bodies(query, variables);
  const ended = await stream(first, withText !== undefined, onNext, signal);
  if (ended === 'retry') await stream(withText!, false, onNext, signal);
}

/** One SSE request; 'retry' when it may and the server answers PersistedQueryNotFound. */
async function stream<Data>(
  body: string,
  mayRetry: boolean,
  onNext: (data: Data) => void,
  signal?: AbortSignal,
): Promise<'completed' | 'retry'> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: headers({ accept: 'text/event-stream' }),
    body,
    signal,
  });
  if (!response.body) throw new Error(`subscription failed: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return 'completed';
    buffer += value;
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (block.startsWith('event: complete')) return 'completed';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!block.includes('event: next') || !data) continue;
      const payload = JSON.parse(data) as { data?: Data; errors?: ErrorList };
      if (mayRetry && persistedQueryNotFound(payload.errors)) {
        await reader.cancel();
        return 'retry';
      }
      if (payload.errors?.length) throw new Error(payload.errors[0]!.message);
      if (payload.data) onNext(payload.data);
    }
  }
}
