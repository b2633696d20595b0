import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.ts';
import type { Metrics } from '../infra/metrics.ts';
import type { GetEndpoint } from './get-endpoints.ts';

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

/** Who may read `GET /metrics` on the public listener. */
export type MetricsAccess = { kind: 'open' } | { kind: 'token'; token: string } | { kind: 'off' };

/**
 * METRICS_TOKEN set: bearer token required. Otherwise metrics stay off the public listener when
 * they have their own (METRICS_PORT) or in production; open only in development and tests.
 */
export function metricsAccess(
  config: Pick<Config, 'METRICS_TOKEN' | 'METRICS_PORT' | 'NODE_ENV'>,
): MetricsAccess {
  if (config.METRICS_TOKEN) return { kind: 'token', token: config.METRICS_TOKEN };
  if (config.METRICS_PORT !== undefined || config.NODE_ENV === 'production') return { kind: 'off' };
  return { kind: 'open' };
}

const digest = (value: string) => Uint8Array.from(createHash('sha256').update(value).digest());

/** Constant-time comparison (of digests, so lengths never differ). */
function bearerMatches(authorization: string | null, token: string): boolean {
  const given = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}

/**
 * (`GET /health`, liveness without I/O, is yoga's own.) `GET /ready`: every dependency answers within a
 * second, so a load balancer stops sending traffic while Postgres is gone. `GET /metrics`:
 * Prometheus text format, as `metricsAccess` allows (401 without the token; 404 when off).
 */
export function operationsEndpoints(options: {
  metrics: Metrics;
  readiness: ReadinessCheck[];
  metricsAccess: MetricsAccess;
}): GetEndpoint {
  const access = options.metricsAccess;
  return (request, pathname, fetchAPI) => {
    const json = (status: number, body: unknown) =>
      new fetchAPI.Response(JSON.stringify(body), {
        status,
        headers: { 'content-type': 'application/json' },
      });
    if (pathname === '/ready') {
      return Promise.all(
        options.readiness.map(
          async ({ name, check }) => [name, await withTimeout(check, 1000)] as const,
        ),
      ).then((results) => {
        const ready = results.every(([, ok]) => ok);
        return json(ready ? 200 : 503, {
          status: ready ? 'ready' : 'unready',
          checks: Object.fromEntries(results),
        });
      });
    }
    if (pathname === '/metrics' && access.kind !== 'off') {
      if (
        access.kind === 'token' &&
        !bearerMatches(request.headers.get('authorization'), access.token)
      ) {
        const refused = json(401, {
          error: 'metrics need Authorization: Bearer <METRICS_TOKEN>',
        });
        refused.headers.set('www-authenticate', 'Bearer realm="metrics"');
        return refused;
      }
      return options.metrics.registry.metrics().then(
        (body) =>
          new fetchAPI.Response(body, {
            headers: { 'content-type': options.metrics.registry.contentType },
          }),
      );
    }
    return undefined;
  };
}
