import {
  type DocumentNode,
  type ExecutionResult,
  GraphQLError,
  getOperationAST,
  Kind,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { appError, type ErrorCode, withCode } from '../errors.ts';
import { withHttpStatus } from './http-status.ts';
import { wrapParseOnce } from './parse-wrapper.ts';

/** yoga's code for a body over its limit (no Content-Length): the one useHttpGuards gives. */
const renamedCodes: Readonly<Record<string, ErrorCode>> = {
  REQUEST_ENTITY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
};

/**
 * The error as clients see it: with Quire's name for a code yoga names otherwise, without yoga's
 * `extensions.originalError`, and in production without graphql-js's "Did you mean …?" hints,
 * which would reveal schema names that introspection hides.
 */
export function clientFacingError(
  error: GraphQLError,
  options: { hideSuggestions: boolean },
): GraphQLError {
  const given = error.extensions?.code as string | undefined;
  const code = given === undefined ? undefined : (renamedCodes[given] ?? given);
  const message = options.hideSuggestions
    ? error.message.replace(/ ?Did you mean .+\?$/, '')
    : error.message;
  const internal = error.extensions !== undefined && 'originalError' in error.extensions;
  if (code === error.extensions?.code && message === error.message && !internal) return error;
  // yoga puts the cause of some request errors (the JSON parser's SyntaxError, with the body's
  // text) in `extensions.originalError`: server detail, never the client's.
  const { originalError: _internal, ...extensions } = error.extensions ?? {};
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: code === undefined ? extensions : { ...extensions, code },
  });
}

/**
 * OPERATION_RESOLUTION_FAILURE when `document` has no operation `operationName` selects (none,
 * several without a name, or an unknown name), with graphql-js' own message for each case;
 * undefined when the operation is found. Carries yoga's HTTP hint (status 400), which only the
 * HTTP serializer reads.
 */
export function operationResolutionError(
  document: DocumentNode,
  operationName: string | null | undefined,
): GraphQLError | undefined {
  if (getOperationAST(document, operationName)) return undefined;
  const operations = document.definitions.filter(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION,
  ).length;
  const message = operationName
    ? `Unknown operation named "${operationName}".`
    : operations === 0
      ? 'Must provide an operation.'
      : 'Must provide operation name if query contains multiple operations.';
  // 400 under every media type, as yoga's own check answers (src/plugins/http-status.ts).
  return appError('OPERATION_RESOLUTION_FAILURE', message, { http: { status: 400 } });
}

/**
 * Before yoga's own check (registered after user plugins), whose message ("Could not determine
 * what operation to execute.") does not say what is wrong; graphql-ws parses through here too
 * (src/http.ts), so every transport answers alike. One function for every request.
 */
const checkOperation = ({ context, result }: { context: unknown; result: unknown }) => {
  const params = (context as { params?: { operationName?: string | null } }).params;
  if (!params || result instanceof Error || !result) return;
  const error = operationResolutionError(result as DocumentNode, params.operationName);
  if (error) throw error;
};

/**
 * Codes syntax errors where graphql-js raises them, on every transport (yoga codes them only for
 * HTTP requests), and applies `clientFacingError` to every HTTP and SSE result (graphql-ws: see
 * src/http.ts), then sets its HTTP status by the rule of `withHttpStatus`. Register after
 * useQueryLimits: its token limit is a parse error with a code of its own, which this keeps.
 */
export function useErrorCodes(options: { hideSuggestions: boolean }): Plugin {
  const codedParse = wrapParseOnce((parseFn) => (source, parseOptions) => {
    try {
      return parseFn(source, parseOptions);
    } catch (error) {
      // graphql-js' parser throws only syntax errors as GraphQLErrors.
      if (error instanceof GraphQLError && error.extensions.code === undefined)
        throw withCode(error, 'GRAPHQL_PARSE_FAILED');
      throw error;
    }
  });
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn(codedParse(parseFn));
      return checkOperation;
    },
    // One hook for both rules on the way out: the errors clients see, then the HTTP status that
    // goes with them (src/plugins/http-status.ts).
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || !result || typeof result !== 'object' || !('errors' in result))
        return;
      const errors = result.errors as readonly GraphQLError[] | undefined;
      if (!errors?.length) return;
      const facing = errors.map((error) =>
        error instanceof GraphQLError ? clientFacingError(error, options) : error,
      );
      const hinted = withHttpStatus({ data: (result as ExecutionResult).data, errors: facing });
      setResult({ ...result, errors: hinted ?? facing });
    },
  };
}
