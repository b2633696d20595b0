import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from './migrator.ts';
import { generateTableTypes, TABLE_TYPES_FILE } from './table-codegen.ts';

/**
 * `npm run db:types`: migrates a scratch database on the server of DATABASE_URL (default the
 * local Postgres the tests use; the role needs CREATEDB), writes src/db/tables.generated.ts from
 * it and drops it again.
 */
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `quire_types_${randomBytes(6).toString('hex')}`;
const scratchUrl = new URL(serverUrl);
scratchUrl.pathname = `/${name}`;

async function onServer(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

await onServer(`create database ${name}`);
const db = new Kysely<unknown>({
  dialect: new PostgresDialect({
    pool: new pg.Pool({ connectionString: scratchUrl.toString(), max: 1 }),
  }),
});
try {
  await migrateToLatest(db);
  await writeFile(TABLE_TYPES_FILE, await generateTableTypes(db));
  console.log(`wrote ${TABLE_TYPES_FILE}`);
} finally {
  await db.destroy();
  await onServer(`drop database if exists ${name} with (force)`);
}
