import { createRequire } from 'node:module';
import {
  type Context,
  context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { NodeSDK, tracing as sdkTracing } from '@opentelemetry/sdk-node';
import type { Logger } from './infra/logger.ts';

/** The instrumentation scope name of every span Quire creates itself. */
export const TRACER_NAME = 'quire';

/** Incoming requests that are not traced: probes and scrapes would drown the real traffic. */
const UNTRACED_PATHS = new Set(['/ready', '/health', '/metrics']);

let sdk: NodeSDK | undefined;

/**
 * Whether the standard OTEL_* variables ask for traces: OTEL_TRACES_EXPORTER names an exporter
 * other than `none` (`otlp`, `console`, `zipkin`), or an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true wins.
 * Unlike the SDK's own default (otlp to localhost), nothing configured means no tracing at all.
 */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
  if (exporters.length > 0) return exporters.some((name) => name !== 'none');
  return Boolean(
    env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim(),
  );
}

/**
 * Starts the OpenTelemetry Node SDK when `tracingRequested(env)` (or when a test passes its own
 * `spanProcessors`, which replace the exporters the environment names); otherwise loads nothing
 * and returns false. The SDK reads the rest of its configuration from OTEL_* itself (service
 * name, endpoint, protocol, sampler, batch sizes). Only traces: metrics stay on /metrics, and the
 * SDK's OTLP metrics and logs pipelines are left off.
 *
 * HTTP server spans, `pg` queries and pool checkouts, and ioredis commands come from the
 * upstream instrumentations, which patch those modules when they are first `require`d. The app is
 * ESM and its `import`s of these CommonJS packages bypass the require hooks, so they are required
 * here once, patched, and every later `import` gets the patched copy from Node's module cache.
 * That only works before anything imported them: call this from a preload (src/instrumentation.ts,
 * `node --import`), or in a test before importing the app. Database and Redis calls outside any
 * span (the worker's polling, the pub/sub connection) make no spans.
 */
export async function startTracing(
  env: Record<string, string | undefined>,
  options: { spanProcessors?: sdkTracing.SpanProcessor[] } = {},
): Promise<boolean> {
  if (sdk) return true;
  if (!options.spanProcessors && !tracingRequested(env)) return false;
  const [{ NodeSDK }, { HttpInstrumentation }, { PgInstrumentation }, { IORedisInstrumentation }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-ioredis'),
    ]);
  sdk = new NodeSDK({
    // The SDK's default name is `unknown_service:node`; one set in the environment wins.
    serviceName:
      env.OTEL_SERVICE_NAME || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '')
        ? undefined
        : 'quire',
    spanProcessors: options.spanProcessors,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request) =>
          UNTRACED_PATHS.has(new URL(request.url ?? '/', 'http://localhost').pathname),
        // Only the API's own requests matter; the exporter's uploads are never traced anyway.
        ignoreOutgoingRequestHook: () => true,
      }),
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  const require = createRequire(import.meta.url);
  for (const name of ['node:http', 'pg', 'ioredis']) require(name);
  return true;
}

/** True once startTracing started the SDK in this process. */
export function tracingActive(): boolean {
  return sdk !== undefined;
}

/**
 * OTEL_* asks for traces but the process was started without the src/instrumentation.ts preload
 * (e.g. `node --import tsx src/main.ts`): say so, rather than silently tracing nothing.
 */
export function warnIfTracingNotPreloaded(logger: Pick<Logger, 'warn'>): void {
  if (tracingRequested(process.env) && !sdk) {
    logger.warn(
      'OTEL_* variables ask for traces, but src/instrumentation.ts was not preloaded: start with npm start / npm run worker (node --import tsx --import ./src/instrumentation.ts …)',
    );
  }
}

/** Exports the spans still buffered and stops the SDK; a no-op when tracing is off. */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}

/** Quire's tracer; a no-op one (spans that record nothing) while tracing is off. */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

const traceContext = new W3CTraceContextPropagator();

/**
 * The W3C `traceparent` of the active span, to hand work to another process (the pipeline run
 * row); undefined when tracing is off or no span is active.
 */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  traceContext.inject(context.active(), carrier, {
    set: (target, key, value) => {
      target[key] = value;
    },
  });
  return carrier.traceparent;
}

/** A link to the span a stored `traceparent` names; none when it is missing or malformed. */
export function linksTo(traceparent: string | null | undefined): Link[] {
  if (!traceparent) return [];
  const extracted = traceContext.extract(
    ROOT_CONTEXT,
    { traceparent },
    {
      get: (carrier, key) => carrier[key as keyof typeof carrier],
      keys: (carrier) => Object.keys(carrier),
    },
  );
  const linked = trace.getSpanContext(extracted);
  return linked ? [{ context: linked }] : [];
}

/**
 * Runs `work` inside a new active span (children created during it, SQL and Redis included,
 * attach to it); the span ends when `work` settles and records a thrown error. `parent` defaults
 * to the active context.
 */
export async function inSpan<T>(
  name: string,
  options: SpanOptions,
  work: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer().startActiveSpan(name, options, parent, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}
