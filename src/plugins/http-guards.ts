import type { FetchAPI, Plugin } from 'graphql-yoga';
import type { ErrorCode } from '../errors.ts';

const SIMPLE_CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'text/plain',
];
const COMPRESSIBLE = /^application\/(graphql-response\+)?json/;

function jsonError(fetchAPI: FetchAPI, status: number, code: ErrorCode, message: string) {
  return new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * Request-level guards: bodies over the size limit when Content-Length says so, before reading
 * (yoga's maxRequestBodySize counts the bytes of the others, e.g. chunked, as it reads them),
 * and CSRF — a browser can POST a form or text/plain cross-site without a preflight, so those
 * content types are refused; JSON requires a preflight the browser only passes with CORS consent.
 */
export function useHttpGuards(options: { maxBodyBytes: number }): Plugin {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      if (request.method !== 'POST') return;
      const length = Number(request.headers.get('content-length') ?? 0);
      if (length > options.maxBodyBytes) {
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
      }
    },
    onResponse({ response }) {
      // CORS headers depend on the Origin (src/app.ts grants only listed origins): a shared
      // cache must not serve one origin's answer to another.
      if (!/\borigin\b/i.test(response.headers.get('vary') ?? '')) {
        response.headers.append('vary', 'Origin');
      }
      // Refused mid-upload, the rest of the body is never read: the connection cannot carry
      // another request, so tell the client not to reuse it.
      if (response.status === 413) response.headers.set('connection', 'close');
    },
  };
}

/** Gzips JSON responses over 1 KiB for clients that accept it; never SSE (it must stream). */
export function useResponseCompression(): Plugin {
  return {
    onResponse({ request, response, setResponse, fetchAPI }) {
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
    },
  };
}
