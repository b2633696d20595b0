import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { type GenerateOptions, generate, PostgresDialect } from 'kysely-codegen';

/** The generated table types; src/db/tables.ts narrows them where the code relies on more. */
export const TABLE_TYPES_FILE = fileURLToPath(new URL('./tables.generated.ts', import.meta.url));

const HEADER =
  '// Generated from the migrated database by `npm run db:types` (kysely-codegen);\n' +
  '// test/db/table-types.test.ts fails when it drifts from the migrations.\n';

/**
 * The table types of the database `db` is connected to, as kysely-codegen writes them, with
 * timestamps and int8 ids as strings, as the driver reads them: src/db/database.ts keeps
 * Postgres' text for timestamps (microseconds), and pg reads int8 as text (ids stay exact).
 * Only `npm run db:types` and its test import this (kysely-codegen is a dev dependency).
 */
export async function generateTableTypes(db: Kysely<unknown>): Promise<string> {
  const output = await generate({
    // kysely-codegen (CommonJS) sees kysely's CommonJS typings: the same class, typed twice.
    db: db as unknown as GenerateOptions['db'],
    dialect: new PostgresDialect(),
    typeMapping: { timestamptz: 'string', int8: 'string' },
  });
  return HEADER + output;
}
