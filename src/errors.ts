import { GraphQLError } from 'graphql';

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'QUERY_TOO_COMPLEX'
  /** A subscription ended because its viewer's role changed: subscribe again. */
  | 'VIEWER_CHANGED';

/**
 * An expected error: shown to the client with a stable code; yoga masks everything else.
 * It carries no HTTP status: raised while executing, it must not change the response's status
 * (partial data answers 200); when it refuses a whole request before execution, the status
 * follows from its code (src/plugins/http-status.ts).
 */
export function appError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

export const badInput = (message: string, extensions?: Record<string, unknown>) =>
  appError('BAD_USER_INPUT', message, extensions);
export const notFound = (what: string) => appError('NOT_FOUND', `${what} not found`);

/**
 * The end of a mutation's description: its expected failures are errors with these codes (and
 * `data: null`, its payload being non-null), never fields of the payload.
 */
export const mutationErrors = (codes: string) =>
  `Expected failures are GraphQL errors with \`extensions.code\`, not payload fields: ${codes}.`;
