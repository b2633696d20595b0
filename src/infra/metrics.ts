import type pg from 'pg';
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client';
import type { Cache } from './cache.ts';
import type { PostgresListener } from './pg-listener.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface MetricsSources {
  pool: pg.Pool;
  cache: Cache;
  rateLimiter: RateLimiter;
  listener: PostgresListener;
  /** Runs waiting to be claimed; read at scrape time. */
  queueDepth: () => Promise<number>;
}

let processMetrics: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, heap, event loop lag, GC, handles), collected once
 * per process: they describe the process, and each collection starts its own event loop monitor
 * and GC observer, which several app instances in one process (tests) would otherwise multiply.
 */
function sharedProcessMetrics(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, prefix: 'quire_' });
  }
  return processMetrics;
}

/**
 * One registry per app instance (tests run several in one process), holding the app's series and
 * the process's. Series names follow Prometheus conventions: base units in the name, `_total` on
 * counters, and no label value that is the sum of the others, so `sum()` over a label adds up.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requestDuration = new Histogram({
    name: 'quire_graphql_request_duration_seconds',
    help: 'GraphQL request duration by operation name',
    labelNames: ['operation', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly sqlStatementsPerRequest = new Histogram({
    name: 'quire_sql_statements_per_request',
    help: 'SQL statements issued by one GraphQL request',
    buckets: [0, 1, 2, 3, 5, 8, 13, 21, 50, 100],
    registers: [this.registry],
  });
  readonly sqlStatements = new Counter({
    name: 'quire_sql_statements_total',
    help: 'SQL statements sent by this process',
    registers: [this.registry],
  });
  readonly activeSubscriptions = new Gauge({
    name: 'quire_active_subscriptions',
    help: 'Open GraphQL subscriptions (SSE and WebSocket)',
    registers: [this.registry],
  });
  readonly subscriptionEventResults = new Counter({
    name: 'quire_subscription_event_results_total',
    help: 'Results of subscription events handed to subscribers: executed (once per event, document, variables and viewer scope) or shared (an executed result reused by another subscriber)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly stepDuration = new Histogram({
    name: 'quire_pipeline_step_duration_seconds',
    help: 'Pipeline step duration by step name and outcome',
    labelNames: ['step', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
    registers: [this.registry],
  });

  constructor(sources: MetricsSources) {
    const { pool, cache, rateLimiter, listener, queueDepth } = sources;
    const registers = [this.registry];
    // getMetricsAsArray returns the registered metric objects (prom-client's typing says only
    // their descriptions).
    for (const metric of sharedProcessMetrics().getMetricsAsArray())
      this.registry.registerMetric(metric as unknown as Metric);
    new Gauge({
      name: 'quire_pg_pool_connections',
      help: 'pg pool connections by state; their sum is the pool size',
      labelNames: ['state'] as const,
      registers,
      collect() {
        this.set({ state: 'idle' }, pool.idleCount);
        this.set({ state: 'in_use' }, pool.totalCount - pool.idleCount);
      },
    });
    // Requests queued for a connection are not connections: a series of their own keeps them
    // out of the pool's sum.
    new Gauge({
      name: 'quire_pg_pool_waiting_requests',
      help: 'Queries waiting for a pg pool connection',
      registers,
      collect() {
        this.set(pool.waitingCount);
      },
    });
    for (const field of ['hits', 'misses', 'errors'] as const) {
      new Counter({
        name: `quire_cache_${field}_total`,
        help: `Cache ${field} by cache name`,
        labelNames: ['cache'] as const,
        registers,
        collect() {
          this.reset();
          for (const [name, stats] of Object.entries(cache.totals))
            this.inc({ cache: name }, stats[field]);
        },
      });
    }
    new Counter({
      name: 'quire_rate_limit_rejections_total',
      help: 'Calls rejected with RATE_LIMITED',
      registers,
      collect() {
        this.reset();
        this.inc(rateLimiter.counters.rejected);
      },
    });
    new Counter({
      name: 'quire_rate_limit_store_errors_total',
      help: 'Rate limit calls the Redis store failed, decided per instance instead',
      registers,
      collect() {
        this.reset();
        this.inc(rateLimiter.counters.storeErrors);
      },
    });
    new Gauge({
      name: 'quire_pg_listener_up',
      help: '0 while the LISTEN connection is down or reconnecting (signals lost, caches relying on them not trusted), 1 otherwise',
      registers,
      collect() {
        this.set(listener.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'quire_pipeline_queue_depth',
      help: 'Pipeline runs queued and due',
      registers,
      async collect() {
        this.set(await queueDepth());
      },
    });
  }
}
