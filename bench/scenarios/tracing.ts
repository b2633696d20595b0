import type { ServerProcess } from '../../test/helpers/processes.ts';
import {
  checkOnce,
  combine,
  cpuMilliseconds,
  databaseName,
  databaseUrl,
  log,
  ratio,
  request,
  rounds,
  spawn,
  started,
  timing,
} from '../harness.ts';
import { type Measurement, measure } from '../load.ts';
import { type Queries, quireNested } from './side-by-side.ts';

/** Tracing off vs on: (a) and (b) on three Quire servers (no tracing, every span, 10 % sampled). */
export async function measureTracing(queries: Queries): Promise<void> {
  log('## Tracing off vs on (OpenTelemetry)\n');
  const tracing = await compareTracing(quireSpans(queries, quireNested));
  log(
    `Three Quire servers side by side (\`CACHE=off\`, so every request runs its SQL): one without \`OTEL_*\`, one with \`OTEL_TRACES_EXPORTER=otlp\` sending every span over OTLP/HTTP protobuf to a sink in the harness (a collector's share of the work is not charged to the server), and one sampling 10 % of the traces (\`OTEL_TRACES_SAMPLER=parentbased_traceidratio\`, \`OTEL_TRACES_SAMPLER_ARG=0.1\`). Measured one after another, then again in reverse order; the mean is shown. CPU per request: the server process's user + system time (\`/proc/<pid>/stat\`) over the measured run, divided by the requests it answered. Spans per request: the batch that carries one request sent alone.\n`,
  );
  log(
    '| workload | tracing | req/s | p50 ms | p99 ms | CPU ms / request | spans / request | OTLP bytes / request |\n|---|---|---|---|---|---|---|---|',
  );
  for (const result of tracing) {
    for (const variant of result.variants) {
      log(
        `| ${result.workload} | ${variant.name} | ${variant.requestsPerSecond} | ${variant.p50} | ${variant.p99} | ${variant.cpuMsPerRequest.toFixed(2)} | ${variant.exporting ? result.spansPerRequest : '—'} | ${variant.exporting ? Math.round(variant.exportedBytesPerRequest) : '—'} |`,
      );
    }
  }
  const change = (on: TracedMeasurement, off: TracedMeasurement) =>
    `throughput ${ratio(on.requestsPerSecond, off.requestsPerSecond)}, CPU per request ${on.cpuMsPerRequest >= off.cpuMsPerRequest ? '+' : ''}${Math.round((on.cpuMsPerRequest / off.cpuMsPerRequest - 1) * 100)} %`;
  log(
    `\nRelative to tracing off: ${tracing
      .map((result) => {
        const [off, ...on] = result.variants;
        return `${result.workload}: ${on.map((variant) => `${variant.name} ${change(variant, off!)}`).join(', ')}`;
      })
      .join('; ')}.\n`,
  );
}

interface TracedMeasurement extends Measurement {
  cpuMsPerRequest: number;
  exportedBytesPerRequest: number;
}

/** The two workloads of the tracing comparison, in Quire's query text. */
function quireSpans(
  queries: Record<string, (name: string) => string | null>,
  nested: string,
): [string, string][] {
  return [
    ['(a) post by id with author', queries['(a) post by id with author']!('Quire')!],
    ['(b) 50 posts, author, tags, 5 comments with authors', nested],
  ];
}

/**
 * Quire without tracing, with every span exported and with 10 % of traces sampled, started side by
 * side; each workload measured on each in turn, then in reverse order (once in a smoke run). The
 * OTLP sink counts the bytes that arrive; one extra request, sent alone while the exporter is
 * idle, gives the spans a request makes.
 */
async function compareTracing(workloads: [string, string][]): Promise<
  {
    workload: string;
    variants: (TracedMeasurement & { name: string; exporting: boolean })[];
    spansPerRequest: number;
  }[]
> {
  const { createServer } = await import('node:http');
  let exportedBytes = 0;
  let exports = 0;
  const sink = createServer((request, response) => {
    request.on('data', (chunk: Uint8Array) => {
      exportedBytes += chunk.length;
    });
    request.on('end', () => {
      exports += 1;
      response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  started.push({ stop: () => new Promise((resolve) => sink.close(resolve)) });
  const sinkPort = (sink.address() as { port: number }).port;
  const exporting = {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
    OTEL_SERVICE_NAME: 'quire-bench',
    // The default queue (2,048 spans) drops spans at this rate: every span must be paid for.
    OTEL_BSP_MAX_QUEUE_SIZE: '100000',
    // Batches every second instead of 5: the bytes of a measured run arrive soon after it.
    OTEL_BSP_SCHEDULE_DELAY: '1000',
  };
  const base = { CACHE: 'off', WORKER: 'off', DATABASE_URL: databaseUrl(databaseName) };
  const variants: { name: string; env: Record<string, string>; exporting: boolean }[] = [
    { name: 'off', env: base, exporting: false },
    { name: 'on', env: { ...base, ...exporting }, exporting: true },
    {
      name: 'on, 10 % sampled',
      env: {
        ...base,
        ...exporting,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.1',
      },
      exporting: true,
    },
  ];
  const servers = new Map<string, ServerProcess>();
  for (const variant of variants)
    servers.set(variant.name, await spawn('main', variant.env, `Quire, tracing ${variant.name}`));
  const results = [];
  for (const [workload, query] of workloads) {
    const body = JSON.stringify({ query });
    const figures = new Map<string, TracedMeasurement[]>();
    const order = rounds > 1 ? [...variants, ...[...variants].reverse()] : variants;
    for (const variant of order) {
      const server = servers.get(variant.name)!;
      const target = { url: server.url, body };
      await checkOnce(target, `Quire, tracing ${variant.name}`);
      if (timing.warmupSeconds > 0)
        await measure(target, { ...timing, warmupSeconds: 0, seconds: timing.warmupSeconds });
      if (variant.exporting) await exporterIdle();
      const cpuBefore = cpuMilliseconds(server.child.pid);
      const bytesBefore = exportedBytes;
      const measured = await measure(target, { ...timing, warmupSeconds: 0 });
      const cpu = cpuMilliseconds(server.child.pid) - cpuBefore;
      // The spans of the last requests leave with the next batch: wait for it before counting.
      if (variant.exporting) await exporterIdle();
      figures.set(variant.name, [
        ...(figures.get(variant.name) ?? []),
        {
          ...measured,
          cpuMsPerRequest: cpu / Math.max(1, measured.requests),
          exportedBytesPerRequest: (exportedBytes - bytesBefore) / Math.max(1, measured.requests),
        },
      ]);
    }
    results.push({
      workload,
      variants: variants.map((variant) => ({
        name: variant.name,
        exporting: variant.exporting,
        ...combineTraced(figures.get(variant.name)!),
      })),
      spansPerRequest: await spansOfOneRequest(servers.get('on')!.url, body),
    });
  }
  return results;

  /** Waits until no export has arrived for longer than the exporter's 1 s schedule. */
  async function exporterIdle(): Promise<void> {
    for (let last = -1; last !== exports; ) {
      last = exports;
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  /** The spans in the batch that carries one request, sent alone. */
  async function spansOfOneRequest(url: string, body: string): Promise<number> {
    await exporterIdle();
    const arrived = new Promise<Uint8Array>((resolve) => {
      sink.once('request', (request) => {
        const chunks: Uint8Array[] = [];
        request.on('data', (chunk: Uint8Array) => chunks.push(chunk));
        request.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
      });
    });
    await request({ url, body }, 'Quire, tracing on');
    return countOtlpSpans(await arrived);
  }
}

/** The mean of a tracing state's rounds. */
function combineTraced(measurements: TracedMeasurement[]): TracedMeasurement {
  const mean = (pick: (m: TracedMeasurement) => number) =>
    measurements.reduce((sum, m) => sum + pick(m), 0) / measurements.length;
  return {
    ...combine(measurements),
    cpuMsPerRequest: mean((m) => m.cpuMsPerRequest),
    exportedBytesPerRequest: mean((m) => m.exportedBytesPerRequest),
  };
}

/**
 * Counts the spans in an OTLP ExportTraceServiceRequest (protobuf): resource_spans (1) →
 * scope_spans (2) → spans (2), each a length-delimited field; walking the wire format is enough.
 */
function countOtlpSpans(message: Uint8Array): number {
  const fields = (buffer: Uint8Array, wanted: number): Uint8Array[] => {
    const found: Uint8Array[] = [];
    let offset = 0;
    const varint = () => {
      let value = 0;
      let shift = 0;
      for (;;) {
        const byte = buffer[offset++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return value;
        shift += 7;
      }
    };
    while (offset < buffer.length) {
      const key = varint();
      const wire = key & 7;
      if (wire === 0) varint();
      else if (wire === 1) offset += 8;
      else if (wire === 5) offset += 4;
      else if (wire === 2) {
        const length = varint();
        if (key >>> 3 === wanted) found.push(buffer.subarray(offset, offset + length));
        offset += length;
      } else throw new Error(`unexpected protobuf wire type ${wire}`);
    }
    return found;
  };
  return fields(message, 1)
    .flatMap((resourceSpans) => fields(resourceSpans, 2))
    .reduce((count, scopeSpans) => count + fields(scopeSpans, 2).length, 0);
}
