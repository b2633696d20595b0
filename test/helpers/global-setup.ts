import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { register } from 'tsx/esm/api';
import type { TestProject } from 'vitest/node';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { ensureChromium, installHint } from './browser.ts';
import { databaseUrl, requirePostgres, withAdminClient } from './services.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/**
 * One migrated template per run (named by this process, so two runs at once do not drop each
 * other's); every test file clones its own database from it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const templateDatabase = `quire_test_template_${process.pid}`;
  // Global setup runs outside vite's transform; the migrator imports .ts migrations natively.
  register();
  await requirePostgres();
  // The browser tests need it; on a fresh machine `npm test` installs it when it may.
  if (!ensureChromium()) console.warn(installHint);
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
  project.provide('templateDatabase', templateDatabase);
  return async () => {
    await withAdminClient((client) =>
      client.query(`drop database if exists ${templateDatabase} with (force)`),
    );
  };
}
