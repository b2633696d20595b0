import { SpanKind } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, stopTracing } from '../../src/tracing.ts';

// Started before the app's modules load, as src/instrumentation.ts does in a server: the
// instrumentations patch pg, ioredis and node:http when they are first required.
const exporter = new InMemorySpanExporter();
await startTracing({}, { spanProcessors: [new SimpleSpanProcessor(exporter)] });
const { startTestApp } = await import('../helpers/app.ts');
const { httpOptions, startHttpServer } = await import('../../src/http.ts');
const { PipelineWorker } = await import('../../src/processing/worker.ts');
const { createPosts, createUser, globalId } = await import('../helpers/factories.ts');
const { solarArticle, startPipelineMutation, waitForRun } = await import('../helpers/pipeline.ts');
const { redisUrl } = await import('../helpers/services.ts');
const { take, wsSubscribe } = await import('../helpers/clients.ts');

type App = Awaited<ReturnType<typeof startTestApp>>;
type Server = Awaited<ReturnType<typeof startHttpServer>>;
type Worker = InstanceType<typeof PipelineWorker>;

let app: App;
let http: Server;
let url: string;

beforeAll(async () => {
  app = await startTestApp({ REDIS_URL: redisUrl, PIPELINE_POLL_MS: '50' });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  url = `http://127.0.0.1:${http.port}/graphql`;
});

afterAll(async () => {
  await http?.close();
  await app?.close();
  await stopTracing();
});

async function post(query: string, variables: Record<string, unknown>, token?: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: unknown[] };
}

const scopeOf = (span: ReadableSpan) => span.instrumentationScope.name;
const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** The finished spans of the trace whose HTTP server span carries `operation`, once it ended. */
async function requestTrace(operation: string): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const spans = exporter.getFinishedSpans();
    const execution = spans.find((span) => span.name === operation);
    const traceId = execution?.spanContext().traceId;
    const inTrace = spans.filter((span) => span.spanContext().traceId === traceId);
    if (inTrace.some((span) => span.kind === SpanKind.SERVER)) return inTrace;
    if (Date.now() > deadline) throw new Error(`no finished trace for ${operation}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asserts the spans form one tree: one root, every other span's parent among them. */
function expectOneTree(spans: ReadableSpan[]): ReadableSpan {
  const ids = new Set(spans.map((span) => span.spanContext().spanId));
  const roots = spans.filter((span) => !parentId(span));
  expect(roots).toHaveLength(1);
  for (const span of spans) if (parentId(span)) expect(ids).toContain(parentId(span));
  return roots[0]!;
}

function ancestors(span: ReadableSpan, spans: ReadableSpan[]): string[] {
  const byId = new Map(spans.map((each) => [each.spanContext().spanId, each]));
  const names: string[] = [];
  for (let parent = byId.get(parentId(span) ?? ''); parent; ) {
    names.push(parent.name);
    parent = byId.get(parentId(parent) ?? '');
  }
  return names;
}

describe('traces', () => {
  it('puts the spans of one GraphQL request in one tree: HTTP → operation → SQL and Redis', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    await createPosts(app.deps.db, [{ authorId: author.id }, { authorId: author.id }]);
    exporter.reset();
    const result = await post(
      /* GraphQL */ `query Feed { posts(first: 5) { edges { node { id title author { name } } } } }`,
      {},
      author.token,
    );
    expect(result.errors).toBeUndefined();

    const spans = await requestTrace('query Feed');
    const root = expectOneTree(spans);
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(scopeOf(root)).toBe('@opentelemetry/instrumentation-http');

    const names = spans.map((span) => span.name);
    expect(names).toEqual(expect.arrayContaining(['graphql.parse', 'graphql.validate']));
    const execution = spans.find((span) => span.name === 'query Feed')!;
    expect(execution.attributes).toMatchObject({
      'graphql.operation.type': 'query',
      'graphql.operation.name': 'Feed',
    });
    expect(parentId(execution)).toBe(root.spanContext().spanId);

    // Every SQL statement has a span; the ones the resolvers sent sit under the operation.
    const sql = spans.filter((span) => scopeOf(span) === '@opentelemetry/instrumentation-pg');
    const statements = sql.filter((span) => span.name !== 'pg-pool.connect');
    expect(statements.length).toBeGreaterThan(0);
    expect(statements.some((span) => ancestors(span, spans).includes('query Feed'))).toBe(true);
    for (const span of statements) expect(ancestors(span, spans)).toContain(root.name);

    // The viewer lookup and the response cache go to Redis inside the same request.
    const redis = spans.filter(
      (span) => scopeOf(span) === '@opentelemetry/instrumentation-ioredis',
    );
    expect(redis.length).toBeGreaterThan(0);
    for (const span of redis) expect(span.kind).toBe(SpanKind.CLIENT);
  });

  it('gives an operation over graphql-ws a tree of its own, rooted at its subscribe', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    exporter.reset();
    const stream = wsSubscribe(
      url.replace('http', 'ws'),
      /* GraphQL */ `query Mine { viewer { id name } posts(first: 2) { totalCount } }`,
      {},
      { token: author.token },
    );
    try {
      const [result] = await take(stream, 1);
      expect(result?.errors).toBeUndefined();
    } finally {
      await stream.dispose();
    }
    const execution = exporter.getFinishedSpans().find((span) => span.name === 'query Mine')!;
    const spans = exporter
      .getFinishedSpans()
      .filter((span) => span.spanContext().traceId === execution.spanContext().traceId);
    const root = expectOneTree(spans);
    expect(root.name).toBe('graphql-ws subscribe');
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(parentId(execution)).toBe(root.spanContext().spanId);
    expect(spans.map((span) => span.name)).toEqual(
      expect.arrayContaining(['graphql.parse', 'graphql.validate']),
    );
    expect(
      spans.some(
        (span) =>
          scopeOf(span) === '@opentelemetry/instrumentation-pg' &&
          ancestors(span, spans).includes('query Mine'),
      ),
    ).toBe(true);
  });

  it('marks an execution whose result has errors, with their codes', async () => {
    exporter.reset();
    const missing = globalId('Post', '999999999');
    const result = await post(
      /* GraphQL */ `mutation Gone($input: StartPipelineInput!) { startPipeline(input: $input) { pipelineRun { id } } }`,
      { input: { postId: missing } },
    );
    expect(result.errors).toBeDefined();
    const spans = await requestTrace('mutation Gone');
    expectOneTree(spans);
    const execution = spans.find((span) => span.name === 'mutation Gone')!;
    expect(execution.status.code).toBe(2);
    expect(execution.attributes['graphql.error.codes']).toEqual(['UNAUTHENTICATED']);
  });

  it("links the worker's run and step spans to the request that started the run", async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    const [draft] = await createPosts(app.deps.db, [
      { authorId: author.id, body: solarArticle, status: 'DRAFT' },
    ]);
    exporter.reset();
    const started = await post(
      startPipelineMutation,
      { input: { postId: globalId('Post', draft!.id), steps: ['normalize', 'keywords'] } },
      author.token,
    );
    expect(started.errors).toBeUndefined();
    const requestSpans = await requestTrace('mutation Start');
    const mutation = requestSpans.find((span) => span.name === 'mutation Start')!;

    const runId = Buffer.from(started.data.startPipeline.pipelineRun.id, 'base64url')
      .toString()
      .split(':')[1]!;
    const stored = await app.deps.db
      .selectFrom('pipeline_runs')
      .select('traceparent')
      .where('id', '=', runId)
      .executeTakeFirstOrThrow();
    const { traceId, spanId } = mutation.spanContext();
    expect(stored.traceparent).toBe(`00-${traceId}-${spanId}-01`);

    let worker: Worker | undefined;
    try {
      worker = new PipelineWorker(app.deps);
      await worker.start();
      expect((await waitForRun(app.deps.db, runId)).status).toBe('SUCCEEDED');
    } finally {
      await worker?.stop();
    }

    const spans = exporter.getFinishedSpans();
    const run = spans.find(
      (span) => span.name === 'pipeline.run' && span.attributes['quire.pipeline.run_id'] === runId,
    )!;
    expect(run).toBeDefined();
    // Its own trace, linked to the mutation's span.
    expect(parentId(run)).toBeUndefined();
    expect(run.spanContext().traceId).not.toBe(traceId);
    expect(run.links.map((link) => link.context)).toEqual([
      expect.objectContaining({ traceId, spanId }),
    ]);

    const runTrace = spans.filter(
      (span) => span.spanContext().traceId === run.spanContext().traceId,
    );
    expectOneTree(runTrace);
    const steps = runTrace.filter((span) => span.name.startsWith('pipeline.step '));
    expect(steps.map((span) => span.name)).toEqual([
      'pipeline.step normalize',
      'pipeline.step keywords',
    ]);
    for (const step of steps) expect(parentId(step)).toBe(run.spanContext().spanId);
    // The step's statements are its children.
    const stepSql = runTrace.filter(
      (span) =>
        scopeOf(span) === '@opentelemetry/instrumentation-pg' &&
        ancestors(span, runTrace).includes('pipeline.step keywords'),
    );
    expect(stepSql.length).toBeGreaterThan(0);
  });
});
