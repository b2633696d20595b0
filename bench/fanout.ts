import http from 'node:http';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export type FanoutTransport = 'SSE' | 'graphql-ws';

export interface FanoutResult {
  subscribers: number;
  connected: number;
  events: number;
  p50: number;
  p99: number;
  /** The run's events had not all arrived by the deadline: the streams were closed early. */
  timedOut: boolean;
}

export interface Fanout {
  /** Every subscriber has received its first (replayed) event. */
  ready: Promise<void>;
  /** Resolves with the deliveries measured once every stream ended, or at `deadlineMs`. */
  done(deadlineMs: number): Promise<FanoutResult>;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

const subscription = 'subscription($id: ID!) { pipelineRun(id: $id) { sequence type createdAt } }';

interface Subscriber {
  /** Settles when the server ends the stream or the connection fails. */
  ended: Promise<void>;
  close(): void;
}

/** Counts connections and records, for every live event, now − its `createdAt` (its append time in Postgres). */
class DeliveryRecorder {
  readonly latencies: number[] = [];
  connected = 0;
  readonly ready: Promise<void>;
  private markReady: () => void = () => {};

  constructor(private readonly count: number) {
    this.ready = new Promise<void>((resolve) => {
      this.markReady = resolve;
    });
  }

  /** One recorder callback per subscriber: its first event is the replayed run.queued. */
  forSubscriber(): (event: { createdAt: string } | undefined, receivedAt: number) => void {
    let first = true;
    return (event, receivedAt) => {
      if (!event) return;
      if (first) {
        first = false;
        this.connected += 1;
        if (this.connected === this.count) this.markReady();
        return;
      }
      this.latencies.push(receivedAt - Date.parse(event.createdAt));
    };
  }
}

function sseSubscriber(
  url: string,
  token: string,
  body: string,
  agent: http.Agent,
  record: ReturnType<DeliveryRecorder['forSubscriber']>,
): Subscriber {
  let request: http.ClientRequest | undefined;
  const ended = new Promise<void>((resolve) => {
    request = http.request(
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
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          const now = Date.now();
          buffer += chunk;
          for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (!block.includes('event: next') || !data) continue;
            record(JSON.parse(data).data?.pipelineRun, now);
          }
        });
        response.on('end', resolve);
        response.on('error', () => resolve());
        response.on('close', resolve);
      },
    );
    request.on('error', () => resolve());
    request.on('close', () => resolve());
    request.end(body);
  });
  return { ended, close: () => request?.destroy() };
}

function wsSubscriber(
  url: string,
  token: string,
  runId: string,
  record: ReturnType<DeliveryRecorder['forSubscriber']>,
): Subscriber {
  // One client, hence one WebSocket, per subscriber: N subscribers are N connections, as with SSE.
  const client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const ended = new Promise<void>((resolve) => {
    client.subscribe<{ pipelineRun: { createdAt: string } }>(
      { query: subscription, variables: { id: runId } },
      {
        next: (result) => record(result.data?.pipelineRun, Date.now()),
        error: () => resolve(),
        complete: () => resolve(),
      },
    );
  }).finally(() => client.dispose());
  return { ended, close: () => void client.dispose() };
}

/**
 * Opens `count` subscriptions to one run's events, each on its own connection (node:http with no
 * pool limit for SSE, a graphql-ws client per subscriber for WebSocket).
 */
export function subscribeMany(
  transport: FanoutTransport,
  url: string,
  token: string,
  runId: string,
  count: number,
): Fanout {
  const recorder = new DeliveryRecorder(count);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const body = JSON.stringify({ query: subscription, variables: { id: runId } });
  const subscribers = Array.from({ length: count }, () =>
    transport === 'SSE'
      ? sseSubscriber(url, token, body, agent, recorder.forSubscriber())
      : wsSubscriber(url, token, runId, recorder.forSubscriber()),
  );
  const allEnded = Promise.all(subscribers.map((subscriber) => subscriber.ended));
  return {
    ready: recorder.ready,
    async done(deadlineMs) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        allEnded.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), deadlineMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        for (const subscriber of subscribers) subscriber.close();
        await allEnded;
      }
      agent.destroy();
      const sorted = [...recorder.latencies].sort((a, b) => a - b);
      return {
        subscribers: count,
        connected: recorder.connected,
        events: sorted.length,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        timedOut,
      };
    },
  };
}
