import type { Plugin } from 'graphql-yoga';
import type { Metrics } from './metrics.ts';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<boolean>;
}

async function withTimeout(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check().catch(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * (`GET /health`, liveness without I/O, is yoga's own.) `GET /ready`: every dependency answers within a
 * second, so a load balancer stops sending traffic while Postgres is gone. `GET /metrics`:
 * Prometheus text format.
 */
export function useOperationsEndpoints(options: {
  metrics: Metrics;
  readiness: ReadinessCheck[];
}): Plugin {
  return {
    // Synchronous for every other request: the API's hot path pays no promise for these.
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET') return;
      const json = (status: number, body: unknown) =>
        new fetchAPI.Response(JSON.stringify(body), {
          status,
          headers: { 'content-type': 'application/json' },
        });
      if (url.pathname === '/ready') {
        return Promise.all(
          options.readiness.map(
            async ({ name, check }) => [name, await withTimeout(check, 1000)] as const,
          ),
        ).then((results) => {
          const ready = results.every(([, ok]) => ok);
          endResponse(
            json(ready ? 200 : 503, {
              status: ready ? 'ready' : 'unready',
              checks: Object.fromEntries(results),
            }),
          );
        });
      }
      if (url.pathname === '/metrics') {
        return options.metrics.registry.metrics().then((body) => {
          endResponse(
            new fetchAPI.Response(body, {
              headers: { 'content-type': options.metrics.registry.contentType },
            }),
          );
        });
      }
    },
  };
}
