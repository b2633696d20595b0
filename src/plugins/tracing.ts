import { type Span, SpanStatusCode } from '@opentelemetry/api';
import { type DocumentNode, type ExecutionResult, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { tracer } from '../tracing.ts';

function failed(span: Span, error: unknown): void {
  span.recordException(error as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
}

/** Runs a synchronous phase (parse, validate) in its own active span. */
function phase(name: string) {
  return (_payload: unknown, wrapped: () => void): void =>
    tracer().startActiveSpan(name, (span) => {
      try {
        wrapped();
      } catch (error) {
        failed(span, error);
        throw error;
      } finally {
        span.end();
      }
    });
}

/** Names the operation's span as the GraphQL semantic conventions do: `query Feed`. */
function describe(span: Span | undefined, document: DocumentNode, operationName?: string | null) {
  const operation = getOperationAST(document, operationName);
  if (!span || !operation) return;
  const name = operation.name?.value;
  span.updateName(name ? `${operation.operation} ${name}` : operation.operation);
  span.setAttribute('graphql.operation.type', operation.operation);
  if (name) span.setAttribute('graphql.operation.name', name);
}

/**
 * OpenTelemetry spans for GraphQL, over HTTP, SSE and graphql-ws alike: `graphql.parse`,
 * `graphql.validate`, and one span per execution named after its operation (`query Feed`,
 * `mutation Write`, `subscription Watch`; for a subscription it covers setting the stream up)
 * with `graphql.operation.type` and `graphql.operation.name`. A result with errors marks the
 * execution span as an error, listing their `extensions.code`s (`UNCODED`
 * for an error yet to be masked). The execution runs inside its
 * span, so the SQL statements and Redis commands its resolvers send are its children.
 * No resolver spans: one per field would cost more than the queries they sit on. Variables and
 * the document are never recorded (they may carry personal data). yoga's instrumentation hooks
 * wrap each phase whole, whatever the other plugins do in it (the response cache answering,
 * graphql-jit replacing execute). Added only when tracing is on (see src/tracing.ts).
 */
export function useTracing(): Plugin {
  const executions = new WeakMap<object, Span>();
  const execution = (
    payload: { context: object },
    wrapped: () => void | Promise<void>,
  ): void | Promise<void> =>
    tracer().startActiveSpan('graphql.execute', (span) => {
      executions.set(payload.context, span);
      let result: void | Promise<void>;
      try {
        result = wrapped();
      } catch (error) {
        failed(span, error);
        span.end();
        throw error;
      }
      if (!(result instanceof Promise)) {
        span.end();
        return result;
      }
      return result.then(
        () => span.end(),
        (error: unknown) => {
          failed(span, error);
          span.end();
          throw error;
        },
      );
    });
  const markErrors = (span: Span | undefined, result: ExecutionResult) => {
    if (!span || !result.errors?.length) return;
    const codes = [
      ...new Set(result.errors.map((error) => String(error.extensions?.code ?? 'UNCODED'))),
    ];
    span.setStatus({ code: SpanStatusCode.ERROR, message: codes.join(', ') });
    span.setAttribute('graphql.error.codes', codes);
  };
  return {
    instrumentation: {
      parse: phase('graphql.parse'),
      validate: phase('graphql.validate'),
      execute: execution,
      subscribe: execution,
    },
    onExecute({ args }) {
      const span = executions.get(args.contextValue);
      describe(span, args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          if (!isAsyncIterable(result)) markErrors(span, result);
        },
      };
    },
    onSubscribe({ args }) {
      describe(executions.get(args.contextValue), args.document, args.operationName);
    },
  };
}
