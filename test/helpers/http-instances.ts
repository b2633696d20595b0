import { expect } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { createLogger, type Logger } from '../../src/infra/logger.ts';
import { startTestApp, type TestApp } from './app.ts';

/** One parsed JSON log line, as captured from a test app's logger. */
export type LogLine = Record<string, any> & { msg: string };

/** A test app served over real HTTP on a free port, with its GraphQL endpoint's URL. */
export interface Instance {
  app: TestApp;
  http: HttpServer;
  url: string;
}

/** Serves `app` over HTTP on a free port, so requests go through the whole wire path. */
export async function serveInstance(app: TestApp): Promise<Instance> {
  const http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  return { app, http, url: `http://127.0.0.1:${http.port}/graphql` };
}

/**
 * Starts two apps on one database and Redis (the second made from the first, both logging to
 * `logger`) and serves each over HTTP: two instances of one deployment.
 */
export async function startInstancePair(
  env: Record<string, string>,
  logger: Logger,
): Promise<{ a: Instance; b: Instance }> {
  const first = await startTestApp(env, undefined, logger);
  const a = await serveInstance(first);
  try {
    return { a, b: await serveInstance(await startTestApp(env, first, logger)) };
  } catch (error) {
    await closeInstances(a);
    throw error;
  }
}

/** What `send` returns: the response, its body (parsed when JSON) and the request's log line. */
export interface Sent {
  status: number;
  headers: Headers;
  body: Record<string, any>;
  text: string;
  /** The request's log line. */
  line: LogLine;
}

/** What to send: GraphQL parameters, framing, and raw overrides for exact bytes on the wire. */
export interface SendInit {
  query?: string;
  variables?: unknown;
  /** The variables exactly as sent (JSON text), to control their key order. */
  rawVariables?: string;
  operationName?: string | null;
  extensions?: unknown;
  /** More body parameters, sent as they are after the others (POST only). */
  more?: Record<string, unknown>;
  token?: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A body sent as it is (POST). */
  rawBody?: string;
}

/** Closes each instance (its HTTP server, then its app), in the order given; skips unset ones. */
export async function closeInstances(...instances: (Instance | undefined)[]): Promise<void> {
  for (const instance of instances) {
    await instance?.http.close();
    await instance?.app.close();
  }
}

/**
 * Builds a `logger` capturing its lines (give it to the apps under test), and `send` and `warm`
 * for instances logging there; each request gets an `x-request-id` starting with
 * `requestIdPrefix`, by which its request log line is found.
 */
export function httpInstances(requestIdPrefix: string) {
  const lines: LogLine[] = [];
  const logger = createLogger(
    { LOG_LEVEL: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );

  /** Sends one request to `instance`; returns its response and its request log line. */
  async function send(instance: Instance, init: SendInit): Promise<Sent> {
    const requestId = `${requestIdPrefix}-${Math.random().toString(36).slice(2)}`;
    const headers: Record<string, string> = {
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...init.headers,
      'x-request-id': requestId,
    };
    const variables =
      init.rawVariables ??
      (init.variables === undefined ? undefined : JSON.stringify(init.variables));
    let response: Response;
    if (init.method === 'GET') {
      const search = new URLSearchParams();
      if (init.query !== undefined) search.set('query', init.query);
      if (variables !== undefined) search.set('variables', variables);
      if (typeof init.operationName === 'string') search.set('operationName', init.operationName);
      if (init.extensions !== undefined) search.set('extensions', JSON.stringify(init.extensions));
      response = await fetch(`${instance.url}?${search}`, { headers });
    } else {
      const parts = [
        init.query === undefined ? '' : `"query":${JSON.stringify(init.query)}`,
        variables === undefined ? '' : `"variables":${variables}`,
        init.operationName === undefined
          ? ''
          : `"operationName":${JSON.stringify(init.operationName)}`,
        init.extensions === undefined ? '' : `"extensions":${JSON.stringify(init.extensions)}`,
        ...Object.entries(init.more ?? {}).map(([key, value]) =>
          value === undefined ? '' : `${JSON.stringify(key)}:${JSON.stringify(value)}`,
        ),
      ].filter(Boolean);
      response = await fetch(instance.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: init.rawBody ?? `{${parts.join(',')}}`,
      });
    }
    const text = await response.text();
    let line: LogLine | undefined;
    for (let wait = 0; wait < 100 && !line; wait += 1) {
      line = lines.find((entry) => entry.msg === 'request' && entry.reqId === requestId);
      if (!line) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    let body: Record<string, any> = {};
    try {
      body = JSON.parse(text) as Record<string, any>;
    } catch {
      // Compressed, an SSE stream or not JSON: the caller reads what it needs from `text`.
    }
    return { status: response.status, headers: response.headers, body, text, line: line! };
  }

  /**
   * Sends the same request until it is answered early (at most three times): the second one is,
   * once the first stored its entry (a third where an instance's first read only learnt the
   * cache namespace).
   */
  async function warm(instance: Instance, init: SendInit): Promise<Sent> {
    let sent = await send(instance, init);
    for (let attempt = 0; attempt < 2 && !sent.line.answeredEarly; attempt += 1)
      sent = await send(instance, init);
    expect(sent.line.answeredEarly).toBe(true);
    return sent;
  }

  return { logger, send, warm };
}
