import { GraphQLError } from 'graphql';
import type { FetchAPI, Plugin } from 'graphql-yoga';
import type { ErrorCode } from '../errors.ts';
import { sseResponse } from './sse.ts';

const SIMPLE_CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'text/plain',
];
const COMPRESSIBLE = /^application\/(graphql-response\+)?json/;
const CONTENT_LENGTH = /^\d+$/;

/** yoga's error for a body that grew past the limit while read (renamed by useErrorCodes). */
const bodyTooLarge = () =>
  new GraphQLError('Request body too large', {
    extensions: { code: 'REQUEST_ENTITY_TOO_LARGE', http: { status: 413 } },
  });

/** The request with a body that errors once more than `limit` bytes have been read. */
function countedBody(request: Request, limit: number, fetchAPI: FetchAPI): Request {
  let bytesRead = 0;
  // yoga's own limit picks the TransformStream by the body's kind (graphql-yoga#4583).
  const Transform =
    request.body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  const body = request.body!.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytesRead += chunk.byteLength;
        if (bytesRead > limit) controller.error(bodyTooLarge());
        else controller.enqueue(chunk);
      },
    }),
  );
  return new fetchAPI.Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body,
    duplex: 'half',
  } as RequestInit);
}

function jsonError(fetchAPI: FetchAPI, status: number, code: ErrorCode, message: string) {
  return new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * Request-level guards: bodies over the size limit when Content-Length says so, before reading;
 * bodies without a well-formed Content-Length (chunked) counted as they are read; and CSRF — a browser can POST a form or text/plain cross-site without a preflight, so those
 * content types are refused; JSON requires a preflight the browser only passes with CORS consent.
 */
export function useHttpGuards(options: { maxBodyBytes: number }): Plugin {
  return {
    onRequest({ request, setRequest, endResponse, fetchAPI }) {
      if (request.method !== 'POST') return;
      const length = request.headers.get('content-length');
      if (Number(length ?? 0) > options.maxBodyBytes) {
        endResponse(
          jsonError(
            fetchAPI,
            413,
            'PAYLOAD_TOO_LARGE',
            `Request bodies are limited to ${options.maxBodyBytes} bytes`,
          ),
        );
        return;
      }
      const contentType =
        request.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() ?? '';
      if (contentType === '' || SIMPLE_CONTENT_TYPES.includes(contentType)) {
        endResponse(
          jsonError(
            fetchAPI,
            415,
            'CSRF_REJECTED',
            'POST requests must be application/json (cross-site form posts are refused)',
          ),
        );
        return;
      }
      // A well-formed Content-Length within the limit bounds the body already: Node's HTTP parser
      // delivers exactly that many bytes. Counting those too (yoga's maxRequestBodySize, turned
      // off in app.ts) piped every body through a stream with its own AbortController, measured
      // at about 4 % of a small read's CPU (bench/analysis.md). Done here rather than in
      // onRequestParse: one hook fewer on every request.
      if ((length === null || !CONTENT_LENGTH.test(length)) && request.body)
        setRequest(countedBody(request, options.maxBodyBytes, fetchAPI));
    },
    onResponse({ request, response, setResponse, fetchAPI }) {
      // CORS headers depend on the Origin (src/app.ts grants only listed origins): a shared
      // cache must not serve one origin's answer to another.
      // `set`, not `append`: @whatwg-node writes a response whose headers were only ever set in
      // one `writeHead` call; an append builds its header map and loses that fast path (Node
      // then takes the headers one `setHeader` at a time).
      const vary = response.headers.get('vary');
      if (vary === null) response.headers.set('vary', 'Origin');
      else if (!/\borigin\b/i.test(vary)) response.headers.set('vary', `${vary}, Origin`);
      // Refused mid-upload, the rest of the body is never read: the connection cannot carry
      // another request, so tell the client not to reuse it.
      if (response.status === 413) response.headers.set('connection', 'close');
      encode(request, response, setResponse, fetchAPI);
    },
  };
}

/**
 * How a response's body travels (called from useHttpGuards' onResponse, one hook for all of the
 * response's headers): SSE streams unbuffered (`sseResponse`), JSON over 1 KiB gzipped for
 * clients that accept it (never SSE: it must stream). The headers set before are carried over.
 */
function encode(
  request: Request,
  response: Response,
  setResponse: (response: Response) => void,
  fetchAPI: FetchAPI,
): void {
  const sse = sseResponse(response, fetchAPI);
  if (sse) {
    setResponse(sse);
    return;
  }
  const accepts = request.headers.get('accept-encoding') ?? '';
  const contentType = response.headers.get('content-type') ?? '';
  const length = Number(response.headers.get('content-length') ?? 0);
  if (
    !/\bgzip\b/.test(accepts) ||
    !COMPRESSIBLE.test(contentType) ||
    length < 1024 ||
    !response.body
  )
    return;
  const headers = new fetchAPI.Headers(response.headers);
  headers.set('content-encoding', 'gzip');
  headers.delete('content-length');
  headers.append('vary', 'accept-encoding');
  setResponse(
    new fetchAPI.Response(response.body.pipeThrough(new fetchAPI.CompressionStream('gzip')), {
      status: response.status,
      headers,
    }),
  );
}
