import { z } from 'zod';
import { parseRedisUrl } from './infra/redis-url.ts';

const flag = z
  .enum(['1', '0', 'true', 'false', 'on', 'off', 'yes', 'no'])
  .transform((value) => ['1', 'true', 'on', 'yes'].includes(value));
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
const optionalUrl = z
  .string()
  .trim()
  .transform((value) => value || undefined)
  .pipe(z.url().optional())
  .optional();
/** An exact browser origin (`scheme://host[:port]`, no path): what the Origin header carries. */
const origin = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      return ['http:', 'https:'].includes(url.protocol) && url.origin === value;
    } catch {
      return false;
    }
  }, 'each origin must be scheme://host[:port] with no path or trailing slash');
const originList = z
  .string()
  .transform((value) => value.split(',').filter((entry) => entry.trim() !== ''))
  .pipe(z.array(origin));

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Browser origins allowed cross-origin access (with credentials); empty = none. */
  CORS_ORIGINS: originList.default([]),
  /** Prometheus metrics on their own listener (METRICS_HOST, default HOST) instead of PORT. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().optional(),
  /** Serves /metrics on the public listener to `Authorization: Bearer <METRICS_TOKEN>` only. */
  METRICS_TOKEN: z.string().min(16).optional(),

  DATABASE_URL: optionalUrl,
  DATA_DIR: z.string().default('./.data'),
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  DB_POOL_SIZE: positiveInt.default(10),
  DB_STATEMENT_TIMEOUT_MS: positiveInt.default(5000),
  DB_IDLE_TIMEOUT_MS: positiveInt.default(10_000),
  DB_CONNECT_TIMEOUT_MS: positiveInt.default(5000),
  /**
   * The process's LISTEN connection goes here instead of DATABASE_URL: straight to Postgres when
   * DATABASE_URL is a pooler that keeps no session per client (LISTEN needs one).
   */
  DATABASE_LISTEN_URL: optionalUrl,
  /** Milliseconds between heartbeats (`select 1`) on the LISTEN connection. */
  LISTEN_HEARTBEAT_MS: positiveInt.default(5000),
  /**
   * Milliseconds a heartbeat may go unanswered before the LISTEN connection counts as lost (a
   * silent partition): revocation signals and cache invalidations are then distrusted until it is
   * back. A dead connection is noticed within LISTEN_HEARTBEAT_MS + this.
   */
  LISTEN_HEARTBEAT_TIMEOUT_MS: positiveInt.default(2000),
  /**
   * on = parameterised statements run prepared, by name, per connection (src/db/prepared-statements.ts);
   * off for a pooler that does not keep a session per client (PgBouncer in transaction mode before 1.21).
   */
  DB_PREPARED_STATEMENTS: flag.default(true),
  MIGRATE_ON_START: flag.default(true),
  SLOW_QUERY_MS: nonNegativeInt.default(200),
  SQL_QUERY_WARN_THRESHOLD: positiveInt.default(50),
  /** off = every loader key queried on its own (the benchmark's N+1 baseline). */
  LOADER_BATCHING: flag.default(true),
  /**
   * off = `post(id:)` loads its comment page, `node(id:)` of a User its posts page, in a statement
   * of its own (the unfolded path, to compare answers and costs).
   */
  QUERY_FOLDING: flag.default(true),

  /** One server (`redis://`, `rediss://`) or a Redis Cluster (`redis+cluster://host:port,…`). */
  REDIS_URL: z
    .string()
    .trim()
    .transform((value) => value || undefined)
    .superRefine((value, context) => {
      if (value === undefined) return;
      try {
        parseRedisUrl(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional(),
  /**
   * Bounds each Redis call on the request path: past it the call counts as failed and the request
   * takes its Redis-down fallback (cache miss, per-instance rate limit).
   */
  REDIS_COMMAND_TIMEOUT_MS: positiveInt.default(50),
  /** How long Redis calls fail fast after 3 failures in a row, before a background probe. */
  REDIS_BREAKER_COOLDOWN_MS: positiveInt.default(1000),
  /** Namespaces every Redis key and channel, so deployments (or test databases) can share a Redis. */
  REDIS_PREFIX: z.string().min(1).default('quire:'),
  CACHE: flag.default(true),
  CACHE_TTL_SECONDS: positiveInt.default(300),
  CACHE_COMPUTED_TTL_SECONDS: positiveInt.default(60),
  CACHE_MEMORY_ENTRIES: positiveInt.default(10_000),
  /** Whole query responses, on top of the resolver cache (needs CACHE=on). */
  RESPONSE_CACHE: flag.default(true),
  RESPONSE_CACHE_TTL_SECONDS: positiveInt.default(60),

  MAX_PAGE_SIZE: positiveInt.max(1000).default(100),
  MAX_QUERY_DEPTH: positiveInt.default(12),
  MAX_QUERY_COMPLEXITY: positiveInt.default(20_000),
  MAX_QUERY_BREADTH: positiveInt.default(500),
  MAX_QUERY_ALIASES: positiveInt.default(30),
  MAX_QUERY_TOKENS: positiveInt.default(5000),
  MAX_BODY_BYTES: positiveInt.default(262_144),
  /** Defaults to on outside production. */
  INTROSPECTION: flag.optional(),
  /** GraphiQL at GET /graphql; defaults to on outside production. */
  GRAPHIQL: flag.optional(),
  /**
   * Path of a trusted-documents manifest (JSON: sha256 → document): only its operations run,
   * sent by hash; unset = automatic persisted queries (any document, hashes registered on use).
   */
  TRUSTED_DOCUMENTS: z.string().trim().min(1).optional(),
  /** How long a registered APQ document is kept after its last registration. */
  APQ_TTL_SECONDS: positiveInt.default(86_400),
  WS_INIT_TIMEOUT_MS: positiveInt.default(3000),
  WS_MAX_SUBSCRIPTIONS: positiveInt.default(20),
  /**
   * After SIGTERM, how long open connections get for their answers before they are cut; the
   * operations they started still finish before the pool closes (SHUTDOWN_DEADLINE_MS bounds it).
   */
  SHUTDOWN_GRACE_MS: positiveInt.default(10_000),
  /** The whole shutdown's bound: past it the process exits with 1 whatever step is stuck. */
  SHUTDOWN_DEADLINE_MS: positiveInt.default(30_000),
  DEFAULT_PAGE_SIZE: positiveInt.default(20),
  MAX_IMPORT_POSTS: positiveInt.default(5000),

  RATE_LIMIT_WINDOW_SECONDS: positiveInt.default(60),
  RATE_LIMIT_MUTATIONS: positiveInt.default(60),
  RATE_LIMIT_START_PIPELINE: positiveInt.default(10),
  RATE_LIMIT_SEARCH: positiveInt.default(30),

  WORKER: flag.default(true),
  PIPELINE_CONCURRENCY: positiveInt.default(5),
  PIPELINE_MAX_ATTEMPTS: positiveInt.default(3),
  PIPELINE_STEP_DELAY_MS: nonNegativeInt.default(0),
  PIPELINE_LEASE_MS: positiveInt.default(15_000),
  PIPELINE_POLL_MS: positiveInt.default(1000),
  PIPELINE_RETRY_BASE_MS: positiveInt.default(1000),
});

export type Config = Readonly<z.infer<typeof schema>>;

export class ConfigError extends Error {}

/** Parsed once at start; every invalid variable is listed in one message. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in schema.shape && value !== ''),
  );
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.')}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  return Object.freeze(parsed.data);
}
