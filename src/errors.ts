import { GraphQLError, type GraphQLErrorOptions } from 'graphql';

/**
 * Where a code can come from. `field`: a resolver raises it while executing, so the schema's
 * field and mutation descriptions name it where it can happen (test/schema/error-codes.test.ts
 * holds both lists equal). `request`: it refuses a whole request (transport, parse, validation,
 * limits) or ends a stream; README.md lists these.
 */
export type ErrorPhase = 'field' | 'request';

/**
 * Every `extensions.code` a client can receive from Quire, with who raises it and when. The set is
 * closed: factories take an `ErrorCode`, so an error carries its code from where it is made and
 * nothing infers one from a message later.
 */
export const ERROR_CODES = {
  BAD_USER_INPUT: {
    phase: 'field',
    description:
      'An argument, input field or variable is invalid: resolvers and services (validation, ' +
      'constraint violations mapped in src/db/pg-errors.ts, undecodable ids and cursors), and the ' +
      'query limits for page sizes and variables that do not coerce.',
  },
  NOT_FOUND: {
    phase: 'field',
    description:
      'The record named by an id does not exist or the viewer may not see it: services and resolvers.',
  },
  CONFLICT: {
    phase: 'field',
    description:
      'The write collides with the current state: a unique value taken (23505), an active run, ' +
      'a run already ended, a token already revoked, or a write that kept losing races.',
  },
  UNAUTHENTICATED: {
    phase: 'field',
    description:
      'No valid bearer token: the context factory (malformed, unknown or revoked token), scope ' +
      'checks on fields that need a viewer, and streams whose token was revoked.',
  },
  FORBIDDEN: {
    phase: 'field',
    description: "The viewer's role does not allow this: scope checks and policies.",
  },
  RATE_LIMITED: {
    phase: 'field',
    description:
      'Over a rate limit (src/infra/rate-limit.ts), with `retryAfter` in seconds: rate-limited ' +
      'fields and the per-caller mutation limit.',
  },
  VIEWER_CHANGED: {
    phase: 'field',
    description: "A subscription ended because its viewer's role changed: subscribe again.",
  },
  QUERY_TOO_COMPLEX: {
    phase: 'request',
    description:
      'The document breaks a limit (tokens, depth, cost, breadth, aliases), named in ' +
      '`extensions.limit`: src/plugins/query-limits.ts, before execution.',
  },
  GRAPHQL_PARSE_FAILED: {
    phase: 'request',
    description:
      'The document is not valid GraphQL syntax: coded when parsing fails (yoga over HTTP, ' +
      'useErrorCodes for every transport).',
  },
  GRAPHQL_VALIDATION_FAILED: {
    phase: 'request',
    description:
      'The document fails validation against the schema (unknown fields, fragment cycles, ' +
      'introspection where it is off): coded by yoga when validation fails.',
  },
  OPERATION_RESOLUTION_FAILURE: {
    phase: 'request',
    description:
      "The operation name is unknown or missing where it is needed, with graphql-js' message " +
      'for the case: src/plugins/error-codes.ts, on every transport.',
  },
  BAD_REQUEST: {
    phase: 'request',
    description:
      'The HTTP request is malformed (JSON, parameters, method, batching): yoga and ' +
      'src/plugins/request-params.ts, src/plugins/http-status.ts.',
  },
  PAYLOAD_TOO_LARGE: {
    phase: 'request',
    description:
      'The body is over MAX_BODY_BYTES: useHttpGuards, or yoga while reading (its ' +
      'REQUEST_ENTITY_TOO_LARGE, renamed by useErrorCodes).',
  },
  CSRF_REJECTED: {
    phase: 'request',
    description: 'A POST that is not application/json (a cross-site form post): useHttpGuards.',
  },
  PERSISTED_QUERY_NOT_FOUND: {
    phase: 'request',
    description:
      'A persisted-operation hash the server does not know: src/plugins/persisted-operations.ts.',
  },
  PERSISTED_QUERY_MISMATCH: {
    phase: 'request',
    description: "A document whose SHA-256 is not the hash sent with it: yoga's APQ plugin.",
  },
  PERSISTED_QUERY_ONLY: {
    phase: 'request',
    description:
      'A raw document sent to a server that runs only trusted documents: ' +
      'src/plugins/persisted-operations.ts.',
  },
  TOO_MANY_SUBSCRIPTIONS: {
    phase: 'request',
    description: 'Over WS_MAX_SUBSCRIPTIONS on one graphql-ws connection: src/http.ts.',
  },
  TIMEOUT: {
    phase: 'request',
    description:
      'A statement ran over DB_STATEMENT_TIMEOUT_MS (Postgres 57014, canceled by statement_timeout), ' +
      'logged server-side with the request id: src/app.ts. On the fields it stopped while ' +
      'executing; 503 when it refused the whole request.',
  },
  INTERNAL_SERVER_ERROR: {
    phase: 'request',
    description:
      "An unexpected error, masked (no SQL, no stack) and logged server-side: yoga's masking, " +
      'and a stream whose viewer could not be checked.',
  },
} as const satisfies Record<string, { phase: ErrorPhase; description: string }>;

/** One of the codes of ERROR_CODES. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `value` is one of Quire's codes (codes from elsewhere, e.g. a library, are not). */
export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);

/** Whether `error` is a GraphQL error with this code. */
export const hasCode = (error: unknown, code: ErrorCode): error is GraphQLError =>
  error instanceof GraphQLError && error.extensions.code === code;

/**
 * An expected error: shown to the client with a stable code; yoga masks everything else.
 * It carries no HTTP status unless `extensions.http` gives one: raised while executing, it must
 * not change the response's status (partial data answers 200); when it refuses a whole request
 * before execution, the status follows from its code (src/plugins/http-status.ts).
 * `options` places it in the document (nodes, path) and keeps its cause.
 */
export function appError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
  options: Omit<GraphQLErrorOptions, 'extensions'> = {},
): GraphQLError {
  return new GraphQLError(message, { ...options, extensions: { code, ...extensions } });
}

/**
 * `error` with `code` added, keeping everything else (message, place in the document, cause),
 * for errors graphql-js makes without one.
 */
export function withCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  return withExtensions(error, { ...error.extensions, code });
}

/** `error` with its extensions replaced, keeping message, place in the document and cause. */
export function withExtensions(
  error: GraphQLError,
  extensions: GraphQLError['extensions'],
): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
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
