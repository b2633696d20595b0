import type { Db } from './database.ts';

export type AfterCommit = (task: () => Promise<void> | void) => void;

/**
 * Runs `work` in one transaction; tasks registered with `afterCommit` (cache invalidation,
 * pub/sub) run only once the commit succeeded, so nobody observes a write that was rolled back.
 */
export async function transact<T>(
  db: Db,
  work: (trx: Db, afterCommit: AfterCommit) => Promise<T>,
): Promise<T> {
  const tasks: (() => Promise<void> | void)[] = [];
  const result = await db.transaction().execute((trx) => work(trx, (task) => tasks.push(task)));
  for (const task of tasks) await task();
  return result;
}
