import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { databaseUrl, withAdminClient } from './services.ts';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `quire_test_${randomBytes(6).toString('hex')}`;
  await withAdminClient((client) =>
    client.query(`create database ${name} template ${inject('templateDatabase')}`),
  );
  return {
    name,
    url: databaseUrl(name),
    drop: () =>
      withAdminClient((client) =>
        client.query(`drop database if exists ${name} with (force)`),
      ).then(() => {}),
  };
}
