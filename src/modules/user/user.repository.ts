import { sql } from 'kysely';
import { batchOf, compiledBatch, idIn, type Params } from '../../db/compiled-query.ts';
import type { Db } from '../../db/database.ts';
import { type KeysetOrder, keysetClauses, type PageRequest } from '../../db/keyset.ts';
import type { Role, UserRow } from '../../db/tables.ts';

export const userOrder: KeysetOrder = {
  name: 'user:CREATED_AT:DESC',
  expression: sql.ref('users.created_at'),
  kind: 'timestamp',
  direction: 'desc',
  idColumn: 'users.id',
};

/** The users columns a query joins as `author_*` beside rows that have an `author_id`. */
export const authorColumns = [
  'users.email as author_email',
  'users.name as author_name',
  'users.role as author_role',
  'users.created_at as author_created_at',
] as const;

/** One of authorColumns. */
export type AuthorColumn = (typeof authorColumns)[number];

export type WithAuthor<Row extends { author_id: string }> = Row & {
  author_email: string;
  author_name: string;
  author_role: UserRow['role'];
  author_created_at: string;
};

export const authorOf = (row: WithAuthor<{ author_id: string }>): UserRow => ({
  id: row.author_id,
  email: row.author_email,
  name: row.author_name,
  role: row.author_role,
  created_at: row.author_created_at,
});

/** The row without its joined author columns (what caches store: authors change on their own). */
export function withoutAuthor<Row extends { author_id: string }>(row: WithAuthor<Row>): Row {
  const { author_email, author_name, author_role, author_created_at, ...own } = row;
  return own as unknown as Row;
}

const usersByIdsQuery = compiledBatch((db, batch, p: Params<{ ids: readonly string[] }>) =>
  db.selectFrom('users').selectAll().where('users.id', '=', idIn(p.ids, batch)),
);

export async function usersByIds(db: Db, ids: readonly string[]): Promise<UserRow[]> {
  return usersByIdsQuery(db, batchOf(ids), { ids });
}

export async function listUsers(db: Db, page: PageRequest): Promise<UserRow[]> {
  const { condition, orderBy, limit } = keysetClauses(userOrder, page);
  return db
    .selectFrom('users')
    .selectAll()
    .where(condition)
    .orderBy(orderBy)
    .limit(limit)
    .execute();
}

export async function countUsers(db: Db): Promise<number> {
  const { count } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(count);
}

export async function insertUser(
  db: Db,
  user: { email: string; name: string; role: Role },
): Promise<UserRow> {
  return db.insertInto('users').values(user).returningAll().executeTakeFirstOrThrow();
}

/** Sets the user's role; the row comes back with the role it had before (undefined: no user). */
export async function updateUserRole(
  db: Db,
  id: string,
  role: Role,
): Promise<(UserRow & { previous_role: Role }) | undefined> {
  return db
    .updateTable('users')
    .from(db.selectFrom('users').select(['id', 'role']).where('id', '=', id).forUpdate().as('old'))
    .set({ role })
    .whereRef('users.id', '=', 'old.id')
    .returningAll('users')
    .returning('old.role as previous_role')
    .executeTakeFirst();
}
