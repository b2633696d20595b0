import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from './database.ts';
import { concurrentWriteConflict, isConcurrencyFailure, isStalePreparedPlan } from './pg-errors.ts';

export type AfterCommit = (task: () => Promise<void> | void) => void;

/** Attempts of one write transaction before a lost race answers CONFLICT. */
const MAX_ATTEMPTS = 4;

/**
 * Runs `work` in one transaction; tasks registered with `afterCommit` (cache invalidation,
 * pub/sub) run only once the commit succeeded, so nobody observes a write that was rolled back.
 *
 * A transaction Postgres aborts as a deadlock victim (40P01) or serialization failure (40001)
 * is run again from the start, up to MAX_ATTEMPTS times with a short random pause, then answered
 * with CONFLICT; one that ran a prepared statement a migration's DDL had made stale
 * (prepared-statements.ts) is run again at once. So `work` may run more than once: keep state it
 * collects (events to publish) inside it, and side effects in `afterCommit`.
 */
export async function transact<T>(
  db: Db,
  work: (trx: Db, afterCommit: AfterCommit) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const tasks: (() => Promise<void> | void)[] = [];
    let result: T;
    try {
      result = await db.transaction().execute((trx) => work(trx, (task) => tasks.push(task)));
    } catch (error) {
      // The statement has been dropped from the connection's prepared ones: run again at once.
      if (isStalePreparedPlan(error) && attempt < MAX_ATTEMPTS) continue;
      if (!isConcurrencyFailure(error)) throw error;
      if (attempt >= MAX_ATTEMPTS) throw concurrentWriteConflict();
      // Jitter keeps the transactions that collided from colliding again in lockstep.
      await sleep(Math.floor(Math.random() * 20 * attempt));
      continue;
    }
    for (const task of tasks) await task();
    return result;
  }
}
