import { GraphQLError } from 'graphql';

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'QUERY_TOO_COMPLEX';

const httpStatus: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  QUERY_TOO_COMPLEX: 400,
};

/** An expected error: shown to the client with a stable code; yoga masks everything else. */
export function appError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code, ...extensions, http: { status: httpStatus[code] } },
  });
}

export const badInput = (message: string, extensions?: Record<string, unknown>) =>
  appError('BAD_USER_INPUT', message, extensions);
export const notFound = (what: string) => appError('NOT_FOUND', `${what} not found`);
