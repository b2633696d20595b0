import { CompiledQuery, type RootOperationNode } from 'kysely';
import type { Db, RecordedStatement } from '../db/database.ts';

/** What the debug header asks for: `1` the counts, `explain` the counts and query plans. */
export type DebugLevel = 'stats' | 'explain';

export function debugLevel(header: string | null): DebugLevel | null {
  if (header === '1') return 'stats';
  if (header === 'explain') return 'explain';
  return null;
}

/**
 * Whether a request may see its SQL text and plans: an ADMIN anywhere, anyone in development.
 * The text shows the schema's tables and columns, which other roles never see in production.
 */
export function maySeeStatements(role: string | undefined, nodeEnv: string): boolean {
  return role === 'ADMIN' || nodeEnv === 'development';
}

/** One statement as the `extensions.sql.statements` list shows it. */
export interface StatementReport {
  /** The text with `$n` placeholders; parameter values are never shown. */
  sql: string;
  parameterCount: number;
  durationMs: number;
  /** `EXPLAIN (FORMAT JSON)` of the generic plan (placeholders, no values); SELECTs only. */
  plan?: unknown;
  /** Why Postgres could not explain this SELECT (the statement itself had run). */
  planError?: string;
}

/** Plans are fetched one by one on one connection: a request's first ones are enough to read. */
const MAX_EXPLAINED = 100;
const PREPARED_NAME = 'quire_debug_explain';

/**
 * Only reads are explained, never ANALYZEd: a plan of a write is not worth the risk of one. Text
 * with a `;` is left out: PREPARE without parameters goes over the simple protocol, which would
 * run a second statement.
 */
function isRead(node: RootOperationNode, sql: string): boolean {
  if (sql.includes(';')) return false;
  if (node.kind === 'RawNode') return /^\s*select\b/i.test(sql);
  return (
    node.kind === 'SelectQueryNode' &&
    (node.with?.expressions ?? []).every((cte) => cte.expression.kind === 'SelectQueryNode')
  );
}

/**
 * The request's statements with their text and durations and, for `explain`, the plans of its
 * SELECTs. Call it after the request's own statements have all run: plans take a connection.
 */
export async function reportStatements(
  db: Db,
  statements: readonly RecordedStatement[],
  level: DebugLevel,
): Promise<StatementReport[]> {
  const executor = db.getExecutor();
  const reports = statements.map((statement) => {
    const compiled = executor.compileQuery(statement.node, statement.queryId);
    return {
      compiled,
      read: isRead(statement.node, compiled.sql),
      report: {
        sql: compiled.sql,
        parameterCount: compiled.parameters.length,
        durationMs: Math.round(statement.durationMs * 100) / 100,
      } as StatementReport,
    };
  });
  const toExplain =
    level === 'explain' ? reports.filter(({ read }) => read).slice(0, MAX_EXPLAINED) : [];
  const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
  if (toExplain.length > 0) {
    // A debugging aid never fails the request it reports on: no connection, no plans.
    await db
      .connection()
      .execute(async (connection) => {
        for (const { compiled, report } of toExplain) {
          try {
            report.plan = await genericPlan(connection, compiled);
          } catch (error) {
            report.planError = message(error);
          }
        }
      })
      .catch((error: unknown) => {
        for (const { report } of toExplain)
          if (report.plan === undefined) report.planError ??= message(error);
      });
  }
  return reports.map(({ report }) => report);
}

/**
 * The generic plan, as for a prepared statement: with the values bound, Postgres would fold them
 * into the plan's conditions and show them. A generic plan is built without values, so the
 * EXECUTE passes NULLs (a utility statement takes no bind parameters) and the values never leave
 * the request.
 */
async function genericPlan(connection: Db, compiled: CompiledQuery): Promise<unknown> {
  const run = (text: string) =>
    connection.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text));
  let prepared = false;
  try {
    await run('begin');
    await run('set local plan_cache_mode = force_generic_plan');
    await run(`prepare ${PREPARED_NAME} as ${compiled.sql}`);
    prepared = true;
    const nulls = compiled.parameters.map(() => 'null').join(', ');
    const { rows } = await run(
      `explain (format json) execute ${PREPARED_NAME}${nulls ? `(${nulls})` : ''}`,
    );
    return (rows[0]?.['QUERY PLAN'] as unknown[] | undefined)?.[0];
  } finally {
    await run('rollback');
    // A prepared statement outlives the transaction it was made in.
    if (prepared) await run(`deallocate ${PREPARED_NAME}`);
  }
}
