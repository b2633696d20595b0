import { type ExecutionResult, GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { appError, type ErrorCode, isErrorCode, withExtensions } from '../errors.ts';

/**
 * yoga's per-error HTTP hints (`extensions.http`, never serialized to clients): the response
 * takes the highest `status`; `spec` marks a GraphQL request error, which yoga answers with that
 * status under application/graphql-response+json and with 200 under application/json.
 */
interface HttpHints {
  status?: number;
  spec?: boolean;
  headers?: Record<string, string>;
}

/**
 * Refusals about who is asking or how often, and the server running out of time: the same status
 * under every media type.
 */
const REFUSAL_STATUS: Readonly<Partial<Record<ErrorCode, number>>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  TIMEOUT: 503,
};

/** Everything else that stops a request before execution is a GraphQL request error. */
const REQUEST_ERROR: HttpHints = { status: 400, spec: true };

// Optional chaining: errors built outside graphql-js (graphql-jit's) may carry no `extensions`,
// and reading them must not turn a client's answer into a 500.
const hintsOf = (error: GraphQLError) => error.extensions?.http as HttpHints | undefined;

function withHints(error: GraphQLError, http: HttpHints | undefined): GraphQLError {
  const { http: _previous, ...extensions } = error.extensions;
  return withExtensions(error, http ? { ...extensions, http } : extensions);
}

/** The error as transports without HTTP (graphql-ws) send it: no hints at all. */
export const withoutHttpHints = (error: GraphQLError): GraphQLError =>
  hintsOf(error) === undefined ? error : withHints(error, undefined);

/** The hints an error keeps once execution has started: its headers, never a status. */
function executionHints(error: GraphQLError): GraphQLError {
  const hints = hintsOf(error);
  if (hints?.status === undefined && hints?.spec === undefined) return error;
  return withHints(error, hints.headers ? { headers: hints.headers } : undefined);
}

/** The status of an error that refused the whole request: explicit, else from its code. */
function refusalHints(error: GraphQLError): GraphQLError {
  const hints = hintsOf(error);
  const code = error.extensions?.code;
  // Masked (unexpected) errors keep yoga's 500; errors without a code are not ours to judge.
  if (typeof code !== 'string' || code === 'INTERNAL_SERVER_ERROR' || error.extensions.unexpected)
    return error;
  // yoga answers an unknown or missing operation name 400 under every media type; it is a
  // GraphQL request error like a validation failure (GetOperation in the GraphQL spec).
  if (code === 'OPERATION_RESOLUTION_FAILURE') return withHints(error, { ...hints, spec: true });
  // A request that is not well-formed (no query, an unsupported persisted-query version) is not a
  // GraphQL request error: GraphQL over HTTP answers it 400 under every media type, though yoga
  // marks "Must provide query string." as one.
  if (code === 'BAD_REQUEST' && hints?.spec) {
    const { spec: _requestError, ...http } = hints;
    return withHints(error, { ...http, status: 400 });
  }
  if (hints?.status !== undefined) return error;
  const status = isErrorCode(code) ? REFUSAL_STATUS[code] : undefined;
  return withHints(error, { ...hints, ...(status ? { status } : REQUEST_ERROR) });
}

/**
 * The errors of `result` with the HTTP hints GraphQL over HTTP asks for, or undefined when they
 * need none. Once execution has started (`data` present and non-null, or an error with a field
 * path: a non-null root field can null `data` itself) the status is 200, whatever any error
 * asked for: clients such as Apollo drop the data of a non-2xx response. Only a request refused
 * as a whole before execution (parse, validation, limits, operation name, variables, token,
 * mutation rate limit) answers non-2xx.
 */
export function withHttpStatus(result: ExecutionResult): readonly GraphQLError[] | undefined {
  const errors = result.errors;
  if (!errors?.length) return undefined;
  const executed = result.data != null || errors.some((error) => error.path !== undefined);
  const hinted = errors.map((error) =>
    error instanceof GraphQLError
      ? executed
        ? executionHints(error)
        : refusalHints(error)
      : error,
  );
  return hinted.some((error, index) => error !== errors[index]) ? hinted : undefined;
}

/**
 * The media types yoga's result processors answer in (graphql-yoga's use-result-processor.ts):
 * SSE, multipart and the two JSON types. yoga matches them against the Accept header only after
 * execution, to pick one.
 */
const ANSWERED_TYPES = [
  'text/event-stream',
  'multipart/mixed',
  'application/graphql-response+json',
  'application/json',
].map((type) => type.split('/') as [string, string]);

/**
 * Whether yoga has a result processor for some media type of this Accept header, by yoga's own
 * rules (graphql-yoga's accept.ts: no header means any type, a charset other than utf-8 rules a
 * type out, `*` matches either half). When none matches, yoga answers 406 whatever the result.
 */
export function acceptsSomeAnswer(accept: string | null): boolean {
  if (accept === null || accept === '') return true;
  for (const range of accept.replace(/\s/g, '').toLowerCase().split(',')) {
    const [mediaType = '', ...params] = range.split(';');
    const charset = params.find((param) => param.includes('charset='));
    if (charset !== undefined && charset !== 'charset=utf-8') continue;
    const [pre, suf] = mediaType.split('/');
    if (
      ANSWERED_TYPES.some(
        ([answeredPre, answeredSuf]) =>
          (pre === '*' || pre === answeredPre) && (suf === '*' || suf === answeredSuf),
      )
    )
      return true;
  }
  return false;
}

/** Accept headers judged (then all forgotten at once): clients send few distinct ones. */
const REMEMBERED_ACCEPTS = 64;

/**
 * Refuses with 406, before anything runs, a request whose Accept header no result type answers
 * (`acceptsSomeAnswer`). Refuses a non-string `operationName` as a malformed request (400, as
 * yoga does for `query`, `variables` and `extensions`): it names no operation, so it is not an
 * unknown operation name, which is a GraphQL request error. The status of every JSON result is set by the rule of
 * `withHttpStatus` in useErrorCodes' result hook, after the codes that plugin gives (one hook on
 * every request rather than two); SSE streams always answer 200: see useSse.
 */
export function useHttpStatus(): Plugin {
  const acceptable = new Map<string, boolean>();
  return {
    onParams({ params, request, setResult }) {
      // A request no result type can answer is refused (yoga's own 406, from its result
      // processing) before parse, context, execution or any cache read: executed, a mutation
      // would have run for a client told it was refused, and a read cost its SQL or Redis round
      // trip for nothing.
      const accept = request.headers.get('accept');
      if (accept !== null) {
        let answerable = acceptable.get(accept);
        if (answerable === undefined) {
          answerable = acceptsSomeAnswer(accept);
          if (acceptable.size >= REMEMBERED_ACCEPTS) acceptable.clear();
          acceptable.set(accept, answerable);
        }
        if (!answerable) {
          setResult({});
          return;
        }
      }
      const operationName: unknown = params?.operationName;
      if (operationName == null || typeof operationName === 'string') return;
      throw appError('BAD_REQUEST', 'Expected "operationName" param to be a string', {
        http: { status: 400 },
      });
    },
  };
}
