/// <reference lib="dom" />

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

export async function request<Data>(
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Data> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as {
    data?: Data;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  const [error] = body.errors ?? [];
  if (error) throw new GraphQLRequestError(error.message, error.extensions?.code);
  return body.data as Data;
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
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: headers({ accept: 'text/event-stream' }),
    body: JSON.stringify({ query, variables }),
    signal,
  });
  if (!response.body) throw new Error(`subscription failed: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (block.startsWith('event: complete')) return;
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!block.includes('event: next') || !data) continue;
      const payload = JSON.parse(data) as { data?: Data; errors?: { message: string }[] };
      if (payload.errors?.length) throw new Error(payload.errors[0]!.message);
      if (payload.data) onNext(payload.data);
    }
  }
}
