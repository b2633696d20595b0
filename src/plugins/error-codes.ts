import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** yoga's code for a body over its limit (no Content-Length): the one useHttpGuards gives. */
const renamedCodes: Record<string, string> = { REQUEST_ENTITY_TOO_LARGE: 'PAYLOAD_TOO_LARGE' };

/** Stable codes for the errors graphql-js and yoga raise without one. */
function codeFor(error: GraphQLError): string | undefined {
  if (error.message.startsWith('Syntax Error')) return 'GRAPHQL_PARSE_FAILED';
  if (error.message.startsWith('Variable "$')) return 'BAD_USER_INPUT';
  const status = (error.extensions?.http as { status?: number } | undefined)?.status;
  if (status !== undefined && status >= 400 && status < 500) return 'BAD_REQUEST';
  if (error.locations && !error.path) return 'GRAPHQL_VALIDATION_FAILED';
  return undefined;
}

/**
 * The error as clients see it: with an `extensions.code`, and in production without graphql-js's
 * "Did you mean …?" hints, which would reveal schema names that introspection hides.
 */
export function clientFacingError(
  error: GraphQLError,
  options: { hideSuggestions: boolean },
): GraphQLError {
  const given = error.extensions?.code as string | undefined;
  const code = given === undefined ? codeFor(error) : (renamedCodes[given] ?? given);
  const message = options.hideSuggestions
    ? error.message.replace(/ ?Did you mean .+\?$/, '')
    : error.message;
  if (code === error.extensions?.code && message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}

/** Applies `clientFacingError` to every HTTP and SSE result (graphql-ws: see src/http.ts). */
export function useErrorCodes(options: { hideSuggestions: boolean }): Plugin {
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || !result || typeof result !== 'object' || !('errors' in result))
        return;
      const errors = result.errors as readonly GraphQLError[] | undefined;
      if (!errors?.length) return;
      setResult({
        ...result,
        errors: errors.map((error) =>
          error instanceof GraphQLError ? clientFacingError(error, options) : error,
        ),
      });
    },
  };
}
