import { GraphQLError, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import { withExtensions } from '../errors.ts';
import { executedRootFields, requestedOperation } from './executed-fields.ts';

/**
 * The refusal with its `Retry-After` as yoga's HTTP hint (`extensions.http.headers`, which yoga
 * sets on the response and never serializes): no onResponse hook on every request for it.
 */
function withRetryAfter(error: GraphQLError): GraphQLError {
  const retryAfter = error.extensions.retryAfter;
  if (typeof retryAfter !== 'number') return error;
  const http = error.extensions.http as { headers?: Record<string, string> } | undefined;
  return withExtensions(error, {
    ...error.extensions,
    http: { ...http, headers: { ...http?.headers, 'retry-after': String(retryAfter) } },
  });
}

/**
 * Charges every mutation field the selected operation executes against the client's
 * `mutation` budget before any of them runs: aliases, fragments, inline fragments and
 * `@skip`/`@include` are counted as graphql-js collects them. Over the budget the whole
 * operation is refused (RATE_LIMITED, HTTP 429 with a `Retry-After` header in seconds) and no
 * mutation runs.
 */
export function useMutationRateLimit(): Plugin<Context> {
  return {
    // Synchronous for queries (every read passes here): no promise, no variable coercion.
    onExecute({ args, setResultAndStopExecution }) {
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
      // Variables that do not coerce stop execution before any field runs: nothing to charge.
      const requested = requestedOperation(
        args.schema,
        args.document,
        args.operationName,
        args.variableValues,
      );
      if (!requested) return;
      const { operation, variables } = requested;
      const fields = executedRootFields(args.schema, args.document, operation, variables);
      if (fields.length === 0) return;
      const ctx = args.contextValue as Context;
      return ctx.deps.rateLimiter
        .consume(ctx.clientKey, 'mutation', fields.length)
        .catch((error: unknown) => {
          if (!(error instanceof GraphQLError)) throw error;
          setResultAndStopExecution({ errors: [withRetryAfter(error)] });
        });
    },
  };
}
