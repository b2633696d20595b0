import { type Expression, type SelectQueryBuilder, sql } from 'kysely';
import type { Db } from './database.ts';
import type { Database } from './tables.ts';

/**
 * The first page of children for many parents in one statement: each parent id drives a LATERAL
 * subquery (an index scan with LIMIT), so the cost follows the page size, not the child count.
 * `children` receives the parent id as an expression and builds the per-parent query.
 */
export async function childrenOfParents<Row>(
  db: Db,
  parentIds: readonly string[],
  // biome-ignore lint/suspicious/noExplicitAny: the child query may join any tables
  children: (parentId: Expression<string>) => SelectQueryBuilder<Database, any, Row>,
): Promise<(Row & { parent_id: string })[]> {
  const rows = await db
    .selectFrom(
      sql<{ parent_id: string }>`(select unnest(${parentIds}::bigint[]) as parent_id)`.as('parent'),
    )
    .innerJoinLateral(
      () => children(sql.ref<string>('parent.parent_id')).as('child'),
      (join) => join.onTrue(),
    )
    .selectAll('child')
    .select('parent.parent_id')
    .execute();
  return rows as (Row & { parent_id: string })[];
}
