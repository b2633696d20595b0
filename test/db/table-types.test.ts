import { readFile } from 'node:fs/promises';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTableTypes, TABLE_TYPES_FILE } from '../../src/db/table-codegen.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/**
 * src/db/tables.generated.ts is what kysely-codegen makes of the migrated database: a migration
 * without `npm run db:types` (or a hand edit of the file) fails here.
 */

let database: TestDatabase;
let db: Kysely<unknown>;

beforeAll(async () => {
  // Cloned from the template the global setup migrated with every migration.
  database = await createTestDatabase();
  db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }),
  });
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

describe('the generated table types', () => {
  it('match the migrated database (else run `npm run db:types`)', async () => {
    const committed = await readFile(TABLE_TYPES_FILE, 'utf8');
    expect(await generateTableTypes(db)).toBe(committed);
  });

  it('change when the database does (the comparison can fail)', async () => {
    await sql`alter table tags add column drift_probe text`.execute(db);
    const generated = await generateTableTypes(db);
    expect(generated).toContain('drift_probe: string | null;');
    expect(generated).not.toBe(await readFile(TABLE_TYPES_FILE, 'utf8'));
  });
});
