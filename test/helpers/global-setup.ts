import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { register } from 'tsx/esm/api';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { databaseUrl, requirePostgres, templateDatabase, withAdminClient } from './services.ts';

/** One migrated template per run; every test file clones its own database from it. */
export default async function setup(): Promise<void> {
  // Global setup runs outside vite's transform; the migrator imports .ts migrations natively.
  register();
  await requirePostgres();
  await withAdminClient(async (client) => {
    await client.query(`drop database if exists ${templateDatabase} with (force)`);
    await client.query(`create database ${templateDatabase}`);
  });
  const db = new Kysely<unknown>({
    dialect: new PostgresDialect({
      pool: new pg.Pool({ connectionString: databaseUrl(templateDatabase) }),
    }),
  });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}
