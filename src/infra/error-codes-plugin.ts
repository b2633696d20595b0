import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

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
 * Gives every client-caused error an `extensions.code`, and in production drops graphql-js's
 * "Did you mean …?" hints, which would reveal schema names that introspection hides.
 */
export function useErrorCodes(options: { hideSuggestions: boolean }): Plugin {
  const rewrite = (error: GraphQLError): GraphQLError => {
    const code = error.extensions?.code ?? codeFor(error);
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
  };
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || !result || typeof result !== 'object' || !('errors' in result))
        return;
      const errors = result.errors as readonly GraphQLError[] | undefined;
      if (!errors?.length) return;
      setResult({
        ...result,
        errors: errors.map((error) => (error instanceof GraphQLError ? rewrite(error) : error)),
      });
    },
  };
}
