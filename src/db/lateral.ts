import { type Compilable, type Expression, type SelectQueryBuilder, sql } from 'kysely';
import { type Batch, batchOf } from './compiled-query.ts';
import type { Db } from './database.ts';
import type { Database } from './tables.ts';

/**
 * The first page of children for many parents in one statement: each parent id drives a LATERAL
 * subquery (an index scan with LIMIT), so the cost follows the page size, not the child count.
 * `children` receives the parent id as an expression and builds the per-parent query. The ids
 * go in as one bigint[] parameter, so the text is the same whatever their number; one parent has
 * its own text, whose plan Postgres keeps (see `idIn`).
 */
export function childrenOfParentsQuery<Row>(
  db: Db,
  parentIds: readonly string[],
  batch: Batch,
  // biome-ignore lint/suspicious/noExplicitAny: the child query may join any tables
  children: (parentId: Expression<string>) => SelectQueryBuilder<Database, any, Row>,
): Compilable<Row & { parent_id: string }> {
  return db
    .selectFrom(
      (batch === 'one'
        ? sql<{ parent_id: string }>`(select (${parentIds}::bigint[])[1] as parent_id)`
        : sql<{ parent_id: string }>`(select unnest(${parentIds}::bigint[]) as parent_id)`
      ).as('parent'),
    )
    .innerJoinLateral(
      () => children(sql.ref<string>('parent.parent_id')).as('child'),
      (join) => join.onTrue(),
    )
    .selectAll('child')
    .select('parent.parent_id') as unknown as Compilable<Row & { parent_id: string }>;
}

/** childrenOfParentsQuery, built and run. */
export async function childrenOfParents<Row>(
  db: Db,
  parentIds: readonly string[],
  // biome-ignore lint/suspicious/noExplicitAny: the child query may join any tables
  children: (parentId: Expression<string>) => SelectQueryBuilder<Database, any, Row>,
): Promise<(Row & { parent_id: string })[]> {
  return (
    await db.executeQuery(childrenOfParentsQuery(db, parentIds, batchOf(parentIds), children))
  ).rows;
}
