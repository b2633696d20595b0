import { appError } from '../errors.ts';

interface PgError {
  code?: string;
  constraint?: string;
  detail?: string;
}

const isPgError = (error: unknown): error is PgError =>
  typeof error === 'object' && error !== null && typeof (error as PgError).code === 'string';

/** 40001 serialization failure, 40P01 deadlock: the transaction lost a race and may run again. */
export const isConcurrencyFailure = (error: unknown): boolean =>
  isPgError(error) && (error.code === '40001' || error.code === '40P01');

/**
 * 0A000 "cached plan must not change result type": a prepared statement whose result columns a
 * migration's DDL changed (src/db/prepared-statements.ts prepares it afresh on its next use).
 */
export const isStalePreparedPlan = (error: unknown): boolean =>
  isPgError(error) &&
  error.code === '0A000' &&
  (error as PgError & Error).message === 'cached plan must not change result type';

/**
 * 57014 raised by statement_timeout (DB_STATEMENT_TIMEOUT_MS). 57014 also ends a statement
 * canceled on request (pg_cancel_backend, a client's cancel): Postgres tells them apart only by
 * the message, and those are not timeouts.
 */
export const isStatementTimeout = (error: unknown): boolean =>
  isPgError(error) &&
  error.code === '57014' &&
  (error as PgError & Error).message === 'canceling statement due to statement timeout';

/** What a write that kept losing races to concurrent writes answers: the client may retry. */
export const concurrentWriteConflict = () =>
  appError('CONFLICT', 'The record was changed by a concurrent request; try again');

/**
 * Maps constraint violations to client errors; the constraint name is stable and safe to show,
 * the SQL and the row detail are not.
 */
export function mapPgError(error: unknown, messages: Record<string, string> = {}): unknown {
  if (!isPgError(error)) return error;
  const constraint = error.constraint ?? '';
  const message = messages[constraint];
  switch (error.code) {
    case '23505':
      return appError('CONFLICT', message ?? 'A record with this value already exists', {
        constraint,
      });
    case '23503':
      return appError('BAD_USER_INPUT', message ?? 'A referenced record does not exist', {
        constraint,
      });
    case '40001':
    case '40P01':
      return concurrentWriteConflict();
    case '23514':
    case '22001':
    case '22P02':
      return appError('BAD_USER_INPUT', message ?? 'A value is not valid', { constraint });
    default:
      return error;
  }
}

/** Runs a write, turning constraint violations into coded GraphQL errors. */
export async function withPgErrors<T>(
  work: () => Promise<T>,
  messages?: Record<string, string>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw mapPgError(error, messages);
  }
}
