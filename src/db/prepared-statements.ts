import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';
import { isStalePreparedPlan } from './pg-errors.ts';

/** How many statements one connection keeps prepared; the least recently used goes first. */
export const PREPARED_PER_CONNECTION = 100;

/**
 * Statements that are never prepared. Full-text search: a generic plan cannot see how selective
 * the term is, and the right plan differs by term (the GIN index for rare terms, the newest-first
 * walk for broad ones; see bench/analysis.md, "Search on real text, bounded").
 */
const neverPrepared = /tsquery/i;

/**
 * A statement without parameters is prepared only when it reads or writes rows (`select`,
 * `with`): compiled pages have no parameters once their limit and fixed values are written in
 * (src/db/compiled-query.ts), and their plans are what preparing keeps. Transaction control, DDL
 * and scripts of several statements run as they are.
 */
const preparedWithoutParameters = /^\s*(select|with)\b/i;

const transactionStart = /^\s*(begin|start transaction)\b/i;
const transactionEnd = /^\s*(commit|rollback|end|abort)\b(?!\s+to\b)/i;

/** pg's result is what Kysely reads (command, rowCount, rows), typed by its own declarations. */
const result = <R>(queryResult: pg.QueryResult) => queryResult as unknown as PostgresQueryResult<R>;

/** pg's per-connection record of the names it has sent a Parse for (not part of its types). */
interface PgConnectionInternals {
  parsedStatements: Record<string, string | undefined>;
  submittedNamedStatements: Record<string, string | undefined>;
}

/** What a pool's client exposes for tests and metrics: the statements it has prepared. */
export interface PreparingClient extends PostgresPoolClient {
  /** SQL text → statement name, least recently used first. */
  readonly prepared: ReadonlyMap<string, string>;
}

/**
 * A pool for Kysely's PostgresDialect that runs each parameterised statement (and each `select`
 * without parameters) as a named
 * (prepared) statement on its connection: Postgres parses and analyses a statement's text once
 * per connection and, after five executions, may reuse a generic plan; pg sends only Bind and
 * Execute for it. Kysely compiles the same text for the same query shape, so the text is the key.
 * At most `perConnection` statements stay prepared per connection (least recently used evicted
 * and deallocated). A statement a migration's DDL made stale ("cached plan must not change result
 * type") is prepared again and, outside a transaction, retried once; inside one the transaction is
 * already aborted, so the error stands and `transact` runs the transaction again.
 */
export function preparingPool(
  pool: pg.Pool,
  perConnection = PREPARED_PER_CONNECTION,
): PostgresPool {
  // Kysely keeps one connection object per client it is handed, so each pg client maps to one
  // wrapper for its whole life.
  const wrappers = new WeakMap<pg.PoolClient, PreparingClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        wrapper = preparingClient(client, perConnection);
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}

function preparingClient(client: pg.PoolClient, perConnection: number): PreparingClient {
  const internals = (client as unknown as { connection: PgConnectionInternals }).connection;
  const prepared = new Map<string, string>();
  let sequence = 0;
  let inTransaction = false;

  function forget(text: string, name: string): void {
    prepared.delete(text);
    delete internals.parsedStatements[name];
    delete internals.submittedNamedStatements[name];
    // Queued ahead of the next statement on this connection; a failure (an aborted transaction
    // refuses it) only leaves the statement allocated until the connection closes.
    client.query(`deallocate ${name}`).catch(() => undefined);
  }

  function nameFor(text: string): string {
    const known = prepared.get(text);
    if (known !== undefined) {
      prepared.delete(text);
      prepared.set(text, known);
      return known;
    }
    if (prepared.size >= perConnection) {
      const [oldestText, oldestName] = prepared.entries().next().value as [string, string];
      forget(oldestText, oldestName);
    }
    sequence += 1;
    const name = `quire_${sequence}`;
    prepared.set(text, name);
    return name;
  }

  async function run<R>(text: string, values: unknown[]): Promise<PostgresQueryResult<R>> {
    if (
      (values.length === 0 && !preparedWithoutParameters.test(text)) ||
      neverPrepared.test(text)
    ) {
      if (transactionStart.test(text)) inTransaction = true;
      else if (transactionEnd.test(text)) inTransaction = false;
      return result<R>(await client.query(text, values));
    }
    try {
      return result<R>(await client.query({ name: nameFor(text), text, values }));
    } catch (error) {
      if (!isStalePreparedPlan(error)) throw error;
      const name = prepared.get(text);
      if (name !== undefined) forget(text, name);
      if (inTransaction) throw error;
      return result<R>(await client.query({ name: nameFor(text), text, values }));
    }
  }

  return {
    prepared,
    query: ((textOrCursor: unknown, values?: readonly unknown[]) =>
      typeof textOrCursor === 'string'
        ? run(textOrCursor, (values ?? []) as unknown[])
        : client.query(textOrCursor as never)) as PostgresPoolClient['query'],
    release: () => client.release(),
  };
}
