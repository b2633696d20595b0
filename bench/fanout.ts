import http from 'node:http';

export interface FanoutResult {
  subscribers: number;
  connected: number;
  events: number;
  p50: number;
  p99: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/**
 * Opens `count` SSE subscriptions to one run with node:http (one socket each, no pool limit) and
 * records, for every live event, now − the event's `createdAt` (its append time in Postgres).
 */
export function subscribeMany(
  url: string,
  token: string,
  runId: string,
  count: number,
): { ready: Promise<void>; done: Promise<FanoutResult> } {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const latencies: number[] = [];
  let connected = 0;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const body = JSON.stringify({
    query: 'subscription($id: ID!) { pipelineRun(id: $id) { sequence type createdAt } }',
    variables: { id: runId },
  });
  const streams = Array.from(
    { length: count },
    () =>
      new Promise<void>((resolve) => {
        const request = http.request(
          url,
          {
            method: 'POST',
            agent,
            headers: {
              accept: 'text/event-stream',
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              authorization: `Bearer ${token}`,
            },
          },
          (response) => {
            let buffer = '';
            let first = true;
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              const now = Date.now();
              buffer += chunk;
              for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                const data = /^data: (.*)$/m.exec(block)?.[1];
                if (!block.includes('event: next') || !data) continue;
                const event = JSON.parse(data).data?.pipelineRun as
                  | { sequence: number; createdAt: string }
                  | undefined;
                if (!event) continue;
                if (first) {
                  first = false;
                  connected += 1;
                  if (connected === count) markReady();
                  // The first event is the replayed run.queued: not a delivery measurement.
                  continue;
                }
                latencies.push(now - Date.parse(event.createdAt));
              }
            });
            response.on('end', resolve);
            response.on('error', () => resolve());
          },
        );
        request.on('error', () => resolve());
        request.end(body);
      }),
  );
  const done = Promise.all(streams).then(() => {
    agent.destroy();
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      subscribers: count,
      connected,
      events: sorted.length,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    };
  });
  return { ready, done };
}
