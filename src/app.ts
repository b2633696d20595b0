import type { IncomingMessage } from 'node:http';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { GraphQLError } from 'graphql';
import { createYoga, type GraphQLParams, maskError, type YogaServerInstance } from 'graphql-yoga';
import { sql } from 'kysely';
import { type AppDeps, type Context, createContext, freshEventContext } from './context.ts';
import { dashboardEndpoint } from './dashboard/dashboard.endpoint.ts';
import { migrationsApplied } from './db/migrator.ts';
import { isStatementTimeout } from './db/pg-errors.ts';
import { appError } from './errors.ts';
import { offlineGraphiQL } from './graphiql.ts';
import { graphiqlExamples } from './graphiql-examples.ts';
import { yogaLogger } from './infra/logger.ts';
import { useViewerStreams } from './modules/auth/viewer-streams.ts';
import { commentResponseTags } from './modules/comment/comment.cache.ts';
import { pipelineResponseTags } from './modules/pipeline/pipeline.publish.ts';
import { postResponseTags, rateLimitedQueryFields } from './modules/post/post.cache.ts';
import { userResponseTags } from './modules/user/user.cache.ts';
import { useArgumentValues } from './plugins/argument-values.ts';
import { compilesUnambiguously } from './plugins/compiled-execution.ts';
import { useErrorCodes } from './plugins/error-codes.ts';
import { useGetEndpoints } from './plugins/get-endpoints.ts';
import { useHttpGuards } from './plugins/http-guards.ts';
import { useHttpStatus } from './plugins/http-status.ts';
import { useMutationRateLimit } from './plugins/mutation-rate-limit.ts';
import { metricsAccess, operationsEndpoints } from './plugins/operations.ts';
import { persistedOperations } from './plugins/persisted-operations.ts';
import { useQueryLimits } from './plugins/query-limits.ts';
import { recordAnsweredEarly, rememberMaskedCause, useRequestLog } from './plugins/request-log.ts';
import { useRequestParamsErrors } from './plugins/request-params.ts';
import { requestStats } from './plugins/request-stats.ts';
import { type EarlyViewer, useResponseCache } from './plugins/response-cache.ts';
import { useSse } from './plugins/sse.ts';
import { useEndableSubscriptions } from './plugins/stream-end.ts';
import { useSharedSubscriptionEvents } from './plugins/subscription-events.ts';
import { useTracing } from './plugins/tracing.ts';
import { schema } from './schema.ts';
import { tracingActive } from './tracing.ts';

export type QuireYoga = YogaServerInstance<{ req?: IncomingMessage }, Context> & {
  /**
   * A graphql-ws subscribe payload's params with a persisted operation's hash replaced by its
   * document, by the same rules as HTTP requests (yoga's onParams does that for them); throws
   * their GraphQLErrors (PERSISTED_QUERY_NOT_FOUND, PERSISTED_QUERY_ONLY, …).
   */
  resolveParams(params: GraphQLParams): Promise<GraphQLParams>;
};

interface InitialContext {
  request?: Request;
  req?: IncomingMessage;
  connectionParams?: Record<string, unknown>;
  clientAddress?: string;
}

/** Pothos rejects a global ID of the wrong type with its own error class: a client error. */
function invalidIdError(error: unknown): GraphQLError | undefined {
  if (!(error instanceof GraphQLError)) return undefined;
  if ((error.originalError as Error | undefined)?.name !== 'PothosValidationError')
    return undefined;
  return appError('BAD_USER_INPUT', error.message, {}, { nodes: error.nodes, path: error.path });
}

/**
 * TIMEOUT for a statement statement_timeout canceled, in place of the masked error: stable, with
 * neither SQL nor stack; its cause is logged with the request id (plugins/request-log.ts).
 */
function statementTimeoutError(error: unknown): GraphQLError | undefined {
  const cause = error instanceof GraphQLError ? error.originalError : error;
  if (!isStatementTimeout(cause)) return undefined;
  const place = error instanceof GraphQLError ? { nodes: error.nodes, path: error.path } : {};
  return appError('TIMEOUT', 'The database took too long to answer; try again later', {}, place);
}

/** Who a result was computed for: the same viewer and role see the same data. */
const viewerScope = (ctx: Context) =>
  ctx.viewer ? `user:${ctx.viewer.id}:${ctx.viewer.role}` : 'anonymous';

/** An anonymous request's early viewer: the scope viewerScope gives it, no statement made. */
const ANONYMOUS: EarlyViewer = Object.freeze({
  scope: 'anonymous',
  sql: Object.freeze({ queries: 0, statements: [] }),
});

/** The configured server: no side effects, no port; main.ts (or a test) decides how to serve it. */
export function createApp(deps: AppDeps): QuireYoga {
  const { config, logger, db } = deps;
  const production = config.NODE_ENV === 'production';
  let migrated = false;
  // Trusted mode lets development run other documents too, so GraphiQL keeps working there.
  const persisted = persistedOperations(
    deps.trustedDocuments
      ? {
          kind: 'trusted',
          documents: deps.trustedDocuments,
          allowRawDocuments: config.NODE_ENV === 'development',
        }
      : { kind: 'automatic', store: deps.apqStore },
  );
  const contextOf = (initial: InitialContext) =>
    createContext(deps, {
      authorization:
        initial.request?.headers.get('authorization') ??
        initial.connectionParams?.authorization ??
        initial.connectionParams?.Authorization,
      clientAddress: initial.req?.socket.remoteAddress ?? initial.clientAddress ?? null,
    });
  const stats = requestStats({
    logger,
    metrics: deps.metrics,
    warnThreshold: config.SQL_QUERY_WARN_THRESHOLD,
  });
  const yoga = createYoga<{ req?: IncomingMessage }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    batching: false,
    // Uploads are not part of the schema and useHttpGuards refuses multipart bodies (CSRF) before
    // any parser runs: yoga's multipart parser would be one more match on every request.
    multipart: false,
    // useQueryLimits caches validation results by document itself: yoga's cache keyed them by
    // a string of every rule's name, built on every request.
    parserAndValidationCache: { validationCache: false },
    // useHttpGuards bounds bodies: by Content-Length, or by counting when there is none.
    maxRequestBodySize: false,
    logging: yogaLogger(logger),
    graphiql: (config.GRAPHIQL ?? !production) && {
      title: 'Quire',
      defaultQuery: graphiqlExamples,
    },
    renderGraphiQL: offlineGraphiQL(),
    // Only listed origins get CORS headers (credentials included); any other origin gets none,
    // so browsers refuse it. A plain list would not do: yoga answers an empty list with `*`
    // semantics and a one-entry list to every origin.
    cors: (request) => {
      const origin = request.headers.get('origin');
      if (origin === null || !config.CORS_ORIGINS.includes(origin)) return false;
      return {
        origin,
        credentials: true,
        methods: ['GET', 'POST'],
        allowedHeaders: [
          'authorization',
          'content-type',
          'accept',
          'x-request-id',
          'last-event-id',
        ],
        exposedHeaders: ['x-request-id', 'retry-after'],
        maxAge: 600,
      };
    },
    maskedErrors: {
      isDev: false,
      maskError: (error, message) => {
        const invalidId = invalidIdError(error);
        if (invalidId) return invalidId;
        const timeout = statementTimeoutError(error);
        if (timeout) {
          rememberMaskedCause(timeout, error);
          return timeout;
        }
        const masked = maskError(error, message, false);
        // Logged once, with its request id, when the response leaves (plugins/request-log.ts).
        if (masked !== error) rememberMaskedCause(masked, error);
        return masked;
      },
    },
    context: contextOf,
    plugins: [
      // First: its spans wrap each phase whole, whatever the plugins below do in it.
      tracingActive() && useTracing(),
      useGetEndpoints(
        dashboardEndpoint,
        operationsEndpoints({
          metrics: deps.metrics,
          metricsAccess: metricsAccess(config),
          readiness: [
            {
              name: 'postgres',
              check: async () => {
                await sql`select 1`.execute(db);
                return true;
              },
            },
            { name: 'migrations', check: async () => (migrated ||= await migrationsApplied(db)) },
            { name: 'redis', check: () => deps.redisReachable() },
          ],
        }),
      ),
      useHttpGuards({ maxBodyBytes: config.MAX_BODY_BYTES }),
      // After the guards: a request they refuse (413, 415) is neither timed nor logged. Before
      // useErrorCodes: it logs each masked error's cause by the error yoga masked.
      useRequestLog(logger, stats.record),
      useRequestParamsErrors(),
      // Before every plugin that reads the document: limits and caches judge what will run.
      persisted.plugin,
      useSse(),
      useEndableSubscriptions(),
      useArgumentValues(),
      useQueryLimits({ config, introspection: config.INTROSPECTION ?? !production }),
      useErrorCodes({ hideSuggestions: production }),
      useHttpStatus(),
      stats.plugin,
      useMutationRateLimit(),
      // Compiled execution, one compile per document held in yoga's parse cache: the generic
      // executor's per-field promises and paths dominated nested queries' CPU and GC. The plugin
      // keys its compile by document alone, so only documents that cannot select another
      // operation use it; the others run on graphql-js.
      useGraphQlJit(
        {},
        {
          enableIf: (args) => compilesUnambiguously(args.schema, args.document, args.operationName),
          onError: (result) =>
            logger.error({ errors: result.errors }, 'graphql-jit could not compile a document'),
        },
      ),
      // After graphql-jit: it wraps the compiled execution.
      config.RESPONSE_CACHE &&
        deps.cache.kind !== 'disabled' &&
        useResponseCache<Context>({
          cache: deps.cache,
          ttlSeconds: config.RESPONSE_CACHE_TTL_SECONDS,
          typeTags: {
            PageInfo: [],
            ...postResponseTags,
            ...userResponseTags,
            ...commentResponseTags,
            ...pipelineResponseTags,
          },
          uncachedRootFields: new Set(rateLimitedQueryFields),
          // Tokens are never cached (revocation shows at once); `node` may still return one.
          interfaceOnlyTypes: new Set(['ApiToken']),
          scopeOf: viewerScope,
          statsOf: (ctx) => ctx.cacheStats,
          // Tracing's spans would lose the phases an early answer skips.
          early: tracingActive()
            ? undefined
            : {
                viewerOf: (request, serverContext) => {
                  // No Authorization (or an empty one): the context would be anonymous, and no
                  // statement finds its viewer, so none is built for the scope.
                  const authorization = request.headers.get('authorization');
                  if (authorization === null || authorization === '') return ANONYMOUS;
                  return Promise.resolve(
                    contextOf({ ...(serverContext as InitialContext), request }),
                  ).then((ctx) => ({ scope: viewerScope(ctx), sql: ctx.sql }));
                },
                answered: recordAnsweredEarly,
              },
        }),
      useViewerStreams(),
      useSharedSubscriptionEvents<Context>({
        contextPartial: freshEventContext,
        scopeOf: viewerScope,
        onResult: (outcome) => deps.metrics.subscriptionEventResults.inc({ outcome }),
      }),
    ],
  });
  return Object.assign(yoga, { resolveParams: persisted.resolveParams });
}
