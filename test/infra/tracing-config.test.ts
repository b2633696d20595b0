import { createServer, type Server } from 'node:http';
import { trace } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpOptions, startHttpServer } from '../../src/http.ts';
import {
  currentTraceparent,
  startTracing,
  tracer,
  tracingActive,
  tracingRequested,
} from '../../src/tracing.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation } from '../helpers/pipeline.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';
import { redisUrl } from '../helpers/services.ts';

// No exporter configured in this process: nothing may be traced, nothing patched.
const started = await startTracing({ OTEL_SERVICE_NAME: 'quire', OTEL_TRACES_EXPORTER: 'none' });

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ REDIS_URL: redisUrl });
});

afterAll(async () => {
  await app?.close();
});

describe('tracing configuration', () => {
  it('is on only when OTEL_* names an exporter or an OTLP endpoint, and not disabled', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_SERVICE_NAME: 'quire' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'console, none' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }),
    ).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' })).toBe(
      false,
    );
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'false' })).toBe(
      true,
    );
  });

  it('without an exporter starts no SDK, patches nothing and records no span', async () => {
    expect(started).toBe(false);
    expect(tracingActive()).toBe(false);
    const wrapped = (method: unknown) => '__wrapped' in (method as object);
    expect(wrapped(pg.Client.prototype.query)).toBe(false);
    expect(wrapped(pg.Pool.prototype.connect)).toBe(false);
    expect(wrapped(Redis.prototype.sendCommand)).toBe(false);
    const span = tracer().startSpan('probe');
    expect(span.isRecording()).toBe(false);
    span.end();

    // A run started through the real server stores no trace context.
    const http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
    try {
      const author = await createUser(app.deps.db, 'AUTHOR');
      const [draft] = await createPosts(app.deps.db, [
        { authorId: author.id, body: solarArticle, status: 'DRAFT' },
      ]);
      const response = await fetch(`http://127.0.0.1:${http.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${author.token}` },
        body: JSON.stringify({
          query: startPipelineMutation,
          variables: { input: { postId: globalId('Post', draft!.id) } },
        }),
      });
      expect(response.status).toBe(200);
      const runs = await app.deps.db
        .selectFrom('pipeline_runs')
        .select('traceparent')
        .where('post_id', '=', draft!.id)
        .execute();
      expect(runs).toEqual([{ traceparent: null }]);
    } finally {
      await http.close();
    }
    expect(trace.getActiveSpan()).toBeUndefined();
    expect(currentTraceparent()).toBeUndefined();
  });
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

/** A minimal OTLP/HTTP JSON receiver: what a collector would get from the server. */
function otlpReceiver(): { server: Server; spans: OtlpSpan[]; services: Set<string> } {
  const spans: OtlpSpan[] = [];
  const services = new Set<string>();
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      const payload = JSON.parse(body) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue?: string } }[] };
          scopeSpans: { spans: OtlpSpan[] }[];
        }[];
      };
      for (const resourceSpans of payload.resourceSpans) {
        const name = resourceSpans.resource.attributes.find((a) => a.key === 'service.name');
        if (name?.value.stringValue) services.add(name.value.stringValue);
        for (const scope of resourceSpans.scopeSpans) spans.push(...scope.spans);
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { server, spans, services };
}

describe('a server started with OTEL_* set', () => {
  let server: ServerProcess | undefined;
  const receiver = otlpReceiver();

  afterAll(async () => {
    await server?.stop();
    receiver.server.close();
  });

  it('exports one trace per request to the configured OTLP endpoint, under OTEL_SERVICE_NAME', async () => {
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.server.address() as { port: number };
    server = await startProcess('main', {
      DATABASE_URL: app.database.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: app.deps.config.REDIS_PREFIX,
      WORKER: 'off',
      MIGRATE_ON_START: 'off',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: 'quire-under-test',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query Count { posts(first: 1) { totalCount } }' }),
    });
    expect(response.status).toBe(200);

    const deadline = Date.now() + 10_000;
    const arrived = () => receiver.spans.find((span) => span.name === 'query Count');
    while (!arrived()) {
      if (Date.now() > deadline) throw new Error(`no span arrived:\n${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const operation = arrived()!;
    expect(receiver.services).toEqual(new Set(['quire-under-test']));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const inTrace = receiver.spans.filter((span) => span.traceId === operation.traceId);
    const ids = new Set(inTrace.map((span) => span.spanId));
    expect(inTrace.filter((span) => !span.parentSpanId)).toHaveLength(1);
    for (const span of inTrace) if (span.parentSpanId) expect(ids).toContain(span.parentSpanId);
    const names = inTrace.map((span) => span.name);
    expect(names).toEqual(
      expect.arrayContaining(['POST', 'graphql.parse', 'graphql.validate', 'query Count']),
    );
    expect(names.some((name) => name.startsWith('pg.query'))).toBe(true);
  });
});
