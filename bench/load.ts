import autocannon from 'autocannon';
import type { PgCountingProxy } from './pg-counting-proxy.ts';

export interface Workload {
  url: string;
  body: string;
  headers?: Record<string, string>;
  /** Varies each request (e.g. unique titles for createPost). */
  setupRequest?: (request: Record<string, unknown>) => Record<string, unknown>;
}

export interface Measurement {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  requests: number;
  failures: number;
  statementsPerRequest: number | null;
}

/**
 * A twin of a contender whose database connections go through a counting proxy. The load runs
 * against the contender itself, connected directly: a proxy hop on every statement would charge
 * designs with more round trips for the instrument, not for themselves.
 */
export interface StatementCounter {
  url: string;
  proxy: PgCountingProxy;
}

/** Warm-up, then a measured run; SQL statements counted afterwards on the contender's twin. */
export async function measure(
  workload: Workload,
  options: {
    connections: number;
    warmupSeconds: number;
    seconds: number;
    counter?: StatementCounter;
  },
): Promise<Measurement> {
  const run = (duration: number) =>
    autocannon({
      url: workload.url,
      connections: options.connections,
      duration,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...workload.headers },
          body: workload.body,
          ...(workload.setupRequest ? { setupRequest: workload.setupRequest } : {}),
        },
      ],
    });
  if (options.warmupSeconds > 0) await run(options.warmupSeconds);
  const result = await run(options.seconds);
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    failures: result.errors + result.timeouts + result.non2xx,
    statementsPerRequest: options.counter
      ? await statementsPerRequest(workload, options.counter)
      : null,
  };
}

/**
 * Counted on sequential requests after the load: under load, statements of requests still in
 * flight at the window's edges would skew a per-request division.
 */
export async function statementsPerRequest(
  workload: Workload,
  { url, proxy }: StatementCounter,
  samples = 20,
): Promise<number> {
  // Requests the load generator abandoned at its deadline are still being served: wait until
  // the database has been quiet for half a second.
  for (let last = -1; last !== proxy.statements; ) {
    last = proxy.statements;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const before = proxy.statements;
  for (let sample = 0; sample < samples; sample += 1) {
    const request = workload.setupRequest?.({ body: workload.body }) ?? { body: workload.body };
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...workload.headers },
      body: String(request.body),
    });
    await response.arrayBuffer();
  }
  return (proxy.statements - before) / samples;
}
