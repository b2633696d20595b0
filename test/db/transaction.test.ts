import { GraphQLError } from 'graphql';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { transact } from '../../src/db/transaction.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createUser } from '../helpers/factories.ts';

// The safety net under every write: a transaction Postgres aborts because it lost a race is run
// again, and a write that keeps losing answers CONFLICT, never an internal error.

let app: TestApp;
let db: Db;
let userIds: [string, string];

const raiseSerializationFailure = (trx: Db) =>
  sql`do $$ begin raise exception 'could not serialize access' using errcode = 'serialization_failure'; end $$`.execute(
    trx,
  );

const lockUser = (trx: Db, id: string) =>
  trx.selectFrom('users').select('id').where('id', '=', id).forUpdate().execute();

const rename = (trx: Db, id: string, name: string) =>
  trx.updateTable('users').set({ name }).where('id', '=', id).execute();

beforeAll(async () => {
  app = await startTestApp();
  db = app.deps.db;
  const [first, second] = await Promise.all([createUser(db), createUser(db)]);
  userIds = [first.id, second.id];
});

afterAll(async () => {
  await app?.close();
});

describe('transact', () => {
  it('runs the deadlock victim again: both writes commit, each after-commit task runs once', async () => {
    const [a, b] = userIds;
    let bothHoldFirstLock: () => void = () => {};
    const firstLocks = new Promise<void>((resolve) => {
      let held = 0;
      bothHoldFirstLock = () => {
        held += 1;
        if (held === 2) resolve();
      };
    });
    const attempts = { ab: 0, ba: 0 };
    const committed: string[] = [];
    // Opposite lock orders, each waiting until the other holds its first row: a real deadlock.
    const write = (key: 'ab' | 'ba', first: string, second: string) =>
      transact(db, async (trx, afterCommit) => {
        attempts[key] += 1;
        await lockUser(trx, first);
        if (attempts[key] === 1) {
          bothHoldFirstLock();
          await firstLocks;
        }
        await lockUser(trx, second);
        await rename(trx, first, `renamed by ${key}`);
        afterCommit(() => {
          committed.push(key);
        });
        return key;
      });
    const results = await Promise.all([write('ab', a, b), write('ba', b, a)]);
    expect(results).toEqual(['ab', 'ba']);
    expect(attempts.ab + attempts.ba).toBe(3);
    expect(committed.sort()).toEqual(['ab', 'ba']);
    const names = await db
      .selectFrom('users')
      .select(['id', 'name'])
      .where('id', 'in', userIds)
      .execute();
    expect(Object.fromEntries(names.map((row) => [row.id, row.name]))).toEqual({
      [a]: 'renamed by ab',
      [b]: 'renamed by ba',
    });
  });

  it('runs a transaction again after a serialization failure; the failed attempt leaves nothing', async () => {
    const [a] = userIds;
    let attempts = 0;
    const tasks: number[] = [];
    const result = await transact(db, async (trx, afterCommit) => {
      attempts += 1;
      await rename(trx, a, `attempt ${attempts}`);
      afterCommit(() => {
        tasks.push(attempts);
      });
      if (attempts === 1) await raiseSerializationFailure(trx);
      return attempts;
    });
    expect(result).toBe(2);
    expect(tasks).toEqual([2]);
    const row = await db
      .selectFrom('users')
      .select('name')
      .where('id', '=', a)
      .executeTakeFirstOrThrow();
    expect(row.name).toBe('attempt 2');
  });

  it('answers CONFLICT once the attempts are used up, without running after-commit tasks', async () => {
    let attempts = 0;
    let ranTask = false;
    const failure = await transact(db, async (trx, afterCommit) => {
      attempts += 1;
      afterCommit(() => {
        ranTask = true;
      });
      await raiseSerializationFailure(trx);
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(GraphQLError);
    expect((failure as GraphQLError).extensions.code).toBe('CONFLICT');
    expect(attempts).toBe(4);
    expect(ranTask).toBe(false);
  });

  it('does not rerun other failures', async () => {
    let attempts = 0;
    const failure = await transact(db, async (trx) => {
      attempts += 1;
      await sql`select 1 / 0`.execute(trx);
    }).catch((error: unknown) => error);
    expect((failure as { code?: string }).code).toBe('22012');
    expect(attempts).toBe(1);
  });
});
