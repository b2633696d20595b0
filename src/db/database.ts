import {
  createQueryId,
  Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  PostgresDialect,
  type PostgresPool,
  type QueryId,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';
import pg from 'pg';
import type { Config } from '../config.ts';
import type { Logger } from '../infra/logger.ts';
import { preparingPool } from './prepared-statements.ts';
import type { Database } from './tables.ts';

export type Db = Kysely<Database>;

const TIMESTAMPTZ_OID = 1184;

export function createPool(
  connectionString: string,
  config: Pick<
    Config,
    'DB_POOL_SIZE' | 'DB_STATEMENT_TIMEOUT_MS' | 'DB_IDLE_TIMEOUT_MS' | 'DB_CONNECT_TIMEOUT_MS'
  >,
): pg.Pool {
  return new pg.Pool({
    connectionString,
    max: config.DB_POOL_SIZE,
    idleTimeoutMillis: config.DB_IDLE_TIMEOUT_MS,
    connectionTimeoutMillis: config.DB_CONNECT_TIMEOUT_MS,
    application_name: 'quire',
    // UTC session so timestamp text is uniform; the timeout bounds every statement server-side.
    options: `-c TimeZone=UTC -c statement_timeout=${config.DB_STATEMENT_TIMEOUT_MS}`,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === TIMESTAMPTZ_OID
          ? (value: string) => value
          : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
}

/**
 * Ends the pool and waits until every connection's socket has closed (at most `boundMs`):
 * pool.end() resolves once its clients are told to end, before they have
 * (brianc/node-postgres#2328), so a server stopped right after, like the embedded Postgres, would
 * cut them and each would report a lost connection.
 */
export async function closeDatabase(db: Db, pool: pg.Pool, boundMs = 2000): Promise<void> {
  const open = pool.totalCount;
  let removed = 0;
  let timer: NodeJS.Timeout | undefined;
  const allClosed = new Promise<void>((resolve) => {
    if (open === 0) return resolve();
    // 'remove' fires once a client's end() has completed, idle or released after end().
    pool.on('remove', () => {
      removed += 1;
      if (removed >= open) resolve();
    });
    timer = setTimeout(resolve, boundMs).unref();
  });
  await db.destroy();
  await allClosed;
  clearTimeout(timer);
}

/** How many statements a request's statement list keeps; the count goes on past it. */
export const MAX_RECORDED_STATEMENTS = 500;

/** One statement a request ran, kept as Kysely's node so its text is compiled only when shown. */
export interface RecordedStatement {
  readonly node: RootOperationNode;
  readonly queryId: QueryId;
  /** From dispatch to result, including any wait for a pooled connection. */
  readonly durationMs: number;
}

export interface SqlStats {
  queries: number;
  /** The first MAX_RECORDED_STATEMENTS statements, for the debug extension. */
  statements: RecordedStatement[];
}

export function createDatabase(
  pool: pg.Pool,
  logger: Logger,
  config: Pick<Config, 'SLOW_QUERY_MS' | 'DB_PREPARED_STATEMENTS'>,
  onQuery?: (durationMs: number) => void,
): Db {
  // A connection can drop (server restart, failover): the pool replaces it, and without these
  // listeners the 'error' event would crash the process.
  pool.on('error', (error) => logger.warn({ err: error.message }, 'idle database connection lost'));
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.warn({ err: error.message }, 'database connection lost'));
  });
  const statementPool = config.DB_PREPARED_STATEMENTS ? preparingPool(pool) : pool;
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: statementPool }),
    log(event) {
      onQuery?.(event.queryDurationMillis);
      // Debug only: the error propagates, and is either a client error (a constraint mapped to
      // CONFLICT) or logged once with its request when it is masked (plugins/request-log.ts).
      if (event.level === 'error') {
        logger.debug(
          {
            err: event.error,
            sql: truncate(event.query.sql),
            durationMs: event.queryDurationMillis,
          },
          'sql error',
        );
      } else if (event.queryDurationMillis >= config.SLOW_QUERY_MS) {
        logger.warn(
          { sql: truncate(event.query.sql), durationMs: Math.round(event.queryDurationMillis) },
          'slow sql',
        );
      }
    },
  });
  (db as RoutedDb)[ROUTE] = {
    pool: statementPool,
    logger,
    slowQueryMs: config.SLOW_QUERY_MS,
    onQuery,
  };
  return db;
}

/** What a statement compiled ahead needs to run on the pool without Kysely's executor. */
interface DirectRoute {
  pool: PostgresPool;
  logger: Logger;
  slowQueryMs: number;
  onQuery?: (durationMs: number) => void;
  /** The request's statement counter (countingDb), when the Db is a request's. */
  stats?: SqlStats;
}

/**
 * The route of the pool's own Db and of each request's counting Db, kept on the Db itself;
 * transactions and other Dbs have none. A WeakMap entry per request's Db cost about a
 * microsecond, mostly in the garbage collector (every short-lived key is an ephemeron).
 */
const ROUTE = Symbol('quire.directRoute');
type RoutedDb = Db & { [ROUTE]?: DirectRoute };

/**
 * Runs a statement compiled once (src/db/compiled-query.ts) straight on the pool: a pooled
 * client, one query, its release, and what Kysely's executor would do around it (the request's
 * statement count and record, the statement metric, the slow-query and error lines). Kysely's
 * executor adds a connection provider, a logging wrapper and an async plugin pass to every
 * statement; for text compiled ahead none of it changes the statement. Returns undefined for a
 * Db without a route (a transaction's, which must use its own connection): run it through Kysely.
 */
export async function runCompiledDirect<Row>(
  db: Db,
  statement: { node: RootOperationNode; sql: string; parameters: readonly unknown[] },
): Promise<Row[] | undefined> {
  const route = (db as RoutedDb)[ROUTE];
  if (!route) return undefined;
  const started = performance.now();
  const client = await route.pool.connect();
  let rows: Row[];
  try {
    rows = (await client.query<Row>(statement.sql, statement.parameters)).rows ?? [];
  } catch (error) {
    route.onQuery?.(performance.now() - started);
    route.logger.debug(
      { err: error, sql: truncate(statement.sql), durationMs: performance.now() - started },
      'sql error',
    );
    throw error;
  } finally {
    client.release();
  }
  const durationMs = performance.now() - started;
  route.onQuery?.(durationMs);
  if (durationMs >= route.slowQueryMs) {
    route.logger.warn(
      { sql: truncate(statement.sql), durationMs: Math.round(durationMs) },
      'slow sql',
    );
  }
  const stats = route.stats;
  if (stats) {
    stats.queries += 1;
    if (stats.statements.length < MAX_RECORDED_STATEMENTS) {
      stats.statements.push({ node: statement.node, queryId: createQueryId(), durationMs });
    }
  }
  return rows;
}

/**
 * The connection migrations run on: their DDL and backfills are expected to be slow, so they are
 * never "slow sql" warnings; a long one is logged at info as a migration step, the rest at debug.
 */
export function createMigrationDatabase(
  pool: pg.Pool,
  logger: Logger,
  config: Pick<Config, 'SLOW_QUERY_MS'>,
): Kysely<unknown> {
  return new Kysely<unknown>({
    dialect: new PostgresDialect({ pool }),
    log(event) {
      if (event.level === 'error') return;
      const durationMs = Math.round(event.queryDurationMillis);
      const fields = { sql: truncate(event.query.sql), durationMs };
      if (event.queryDurationMillis >= config.SLOW_QUERY_MS) logger.info(fields, 'migration step');
      else logger.debug(fields, 'migration step');
    },
  });
}

function truncate(text: string, max = 500): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * Counts (and times) the statements one request sends, so N+1 patterns show up in numbers.
 * Counted on results: transformQuery also runs for subqueries built from the same instance, which
 * therefore never reach transformResult (the WeakMap lets their entries go).
 */
export class QueryCountPlugin implements KyselyPlugin {
  readonly #dispatched = new WeakMap<QueryId, { node: RootOperationNode; started: number }>();

  constructor(private readonly stats: SqlStats) {}

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.#dispatched.set(args.queryId, { node: args.node, started: performance.now() });
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    this.stats.queries += 1;
    const dispatched = this.#dispatched.get(args.queryId);
    if (dispatched && this.stats.statements.length < MAX_RECORDED_STATEMENTS) {
      this.stats.statements.push({
        node: dispatched.node,
        queryId: args.queryId,
        durationMs: performance.now() - dispatched.started,
      });
    }
    return args.result;
  }
}

/**
 * The request's Db until something other than a compiled statement needs it: Kysely's
 * `withPlugin` builds an instance (executor, plugin list, frozen props) of about 3 µs, which
 * every request paid, `{ __typename }`, a cached response or a list read only through compiled
 * statements included. The counting instance is made on the first property read other than the
 * route; methods are bound to it, so `this` inside Kysely is always the real instance.
 */
class LazyCountingDb implements ProxyHandler<Db> {
  #db: Db | undefined;

  constructor(
    private readonly base: Db,
    private readonly stats: SqlStats,
    private readonly route: DirectRoute | undefined,
  ) {}

  get(_target: Db, key: string | symbol): unknown {
    if (key === ROUTE) return this.route;
    this.#db ??= this.base.withPlugin(new QueryCountPlugin(this.stats));
    const value: unknown = Reflect.get(this.#db, key, this.#db);
    return typeof value === 'function' ? value.bind(this.#db) : value;
  }
}

/** `db` with the request's statement counter: Kysely's statements and compiled ones alike. */
export function countingDb(db: Db, stats: SqlStats): Db {
  const base = (db as RoutedDb)[ROUTE];
  const route = base && { ...base, stats };
  return new Proxy(db, new LazyCountingDb(db, stats, route));
}
