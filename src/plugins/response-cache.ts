import { createHash } from 'node:crypto';
import { getDocumentString } from '@envelop/core';
import {
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  getNamedType,
  getOperationAST,
  isAbstractType,
  isLeafType,
  Kind,
  type OperationDefinitionNode,
  print,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { GraphQLParams, OnParamsEventPayload, Plugin } from 'graphql-yoga';
import type { SqlStats } from '../db/database.ts';
import type { Cache, CacheStats } from '../infra/cache.ts';
import { DEBUG_HEADER } from './request-stats.ts';

export interface ResponseCacheOptions<Context> {
  cache: Cache;
  ttlSeconds: number;
  /**
   * The cache tags each output type's data depends on. A document that reaches a type not listed
   * here is never cached, so a new type is safe until someone says what invalidates it.
   */
  typeTags: Readonly<Record<string, readonly string[]>>;
  /** Root query fields that must run every time (they are rate limited per call). */
  uncachedRootFields: ReadonlySet<string>;
  /**
   * Types whose own fields are never cached, yet which an interface field (`node`, `nodes`) may
   * return: a document reading them only through the interface (`id`, `__typename`) stays
   * cacheable. Only for types whose rows are never deleted and whose visibility to a viewer
   * scope never changes, so what the interface shows of them cannot go stale.
   */
  interfaceOnlyTypes: ReadonlySet<string>;
  /** Everything about the viewer that changes what a query answers. */
  scopeOf(context: Context): string;
  statsOf(context: Context): CacheStats;
  /**
   * Answers a hit as soon as yoga has the request's params (as its params handler), before
   * parse, validation, context building and execution, when this process already took the request's exact document text and operation
   * name through all of them as a cacheable query. Omitted (tracing on, whose spans would
   * differ): every request takes the whole path.
   */
  early?: EarlyAnswers;
}

/** What answering a hit before execution needs from the server. */
export interface EarlyAnswers {
  /**
   * The viewer scope the request would execute with (`scopeOf` of the context the same factory
   * would build) and the statements finding its viewer took; rejects where the whole path would
   * refuse the request (an unknown, revoked or malformed token), which then takes it. An
   * anonymous request need not build a context for it.
   */
  viewerOf(request: Request, serverContext: object): EarlyViewer | Promise<EarlyViewer>;
  /**
   * Tells the request's stats (log line, metrics) that it was answered here, for which operation
   * and with which statements.
   */
  answered(serverContext: object, operation: string | undefined, sql: SqlStats): void;
}

/** Who an early answer is for: the viewer scope, and the statements finding the viewer took. */
export interface EarlyViewer {
  scope: string;
  sql: SqlStats;
}

/** The same dependency tags for several output types (a node type, its connection, its edge…). */
export const typesDependingOn = (
  tags: readonly string[],
  typeNames: readonly string[],
): Record<string, readonly string[]> => Object.fromEntries(typeNames.map((name) => [name, tags]));

interface DocumentPlan {
  /** Null: this document is never cached. */
  tags: string[] | null;
  hash: string;
}

/**
 * Request digests remembered, across all documents (then forgotten all at once), and the longest
 * document hash, operation name and variables remembered: at most about 1 MiB of keys, whatever
 * number of documents clients send. Longer ones are hashed on every request.
 */
const REMEMBERED_DIGESTS = 1024;
const REMEMBERED_KEY_LENGTH = 1024;

/**
 * Document texts and variable sets remembered for early answers (then all forgotten at once),
 * and the longest of each remembered: at most about 2 MiB of texts and 4 MiB of variables,
 * whatever clients send. Longer ones take the whole path.
 */
const REMEMBERED_TEXTS = 256;
const REMEMBERED_TEXT_LENGTH = 8192;
const REMEMBERED_VARIABLE_SETS = 4096;

/**
 * A cacheable query as the whole path planned it, for its exact text and operation name, and
 * the variables (their JSON as the request sent them) it executed with in this process: only
 * those were checked here (coercion, argument values, limits), whichever instance stored an entry.
 */
interface EarlyPlan {
  tags: string[];
  hash: string;
  /** The name of the operation the text and operation name select, for the request's stats. */
  operation: string | undefined;
  variables: Set<string>;
}

/**
 * Set on a request's server context when the early lookup could not reach the cache: the rest
 * of the path executes without it rather than waiting on it a second time.
 */
const CACHE_UNREACHED = Symbol('quire.responseCacheUnreached');
type WithCacheUnreached = { [CACHE_UNREACHED]?: true };

/** What yoga runs for a request's params once every onParams hook passed them (a type yoga does not export). */
type ParamsHandler = OnParamsEventPayload<object>['paramsHandler'];

/** Results framed as streams or multipart parts are answered by the whole path. */
const STREAMED_ACCEPT = /text\/event-stream|multipart\/mixed/i;

/**
 * The tags an operation depends on, from the types its selections (and the document's
 * fragments) reach; null if not cacheable.
 */
function dependencies(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  typeTags: ResponseCacheOptions<unknown>['typeTags'],
  uncachedRootFields: ReadonlySet<string>,
  interfaceOnlyTypes: ReadonlySet<string>,
): string[] | null {
  const selected: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [
      operation,
      ...document.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION),
    ],
  };
  const tags = new Set<string>();
  let cacheable = true;
  const typeInfo = new TypeInfo(schema);
  const queryType = schema.getQueryType();
  visit(
    selected,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        if (!cacheable) return;
        if (typeInfo.getParentType() === queryType && uncachedRootFields.has(node.name.value)) {
          cacheable = false;
          return;
        }
        const parent = typeInfo.getParentType();
        if (parent && interfaceOnlyTypes.has(parent.name)) {
          cacheable = false;
          return;
        }
        const type = typeInfo.getType();
        if (!type) return;
        const named = getNamedType(type);
        if (isLeafType(named)) return;
        const objectTypes = isAbstractType(named) ? schema.getPossibleTypes(named) : [named];
        for (const objectType of objectTypes) {
          if (objectType !== named && interfaceOnlyTypes.has(objectType.name)) continue;
          const typeTagList = typeTags[objectType.name];
          if (!typeTagList) {
            cacheable = false;
            return;
          }
          for (const tag of typeTagList) tags.add(tag);
        }
      },
    }),
  );
  return cacheable ? [...tags].sort() : null;
}

/** How every stored response begins: only results with non-null `data` are stored. */
const STORED_PREFIX = '{"data":{';

/**
 * A stored response as execution returns it: yoga sends the stored text as it is (the result's
 * `stringify`, the hook graphql-jit uses too), so a hit neither parses nor re-serializes it.
 * `data` is parsed only if something reads it; a copy (a plugin adding debug extensions spreads
 * the result) or a changed result is serialized as usual.
 */
function storedResult(json: string): ExecutionResult {
  // Sent unparsed, a foreign or damaged entry would reach the client as its body: one not framed
  // as this plugin stores them (`{"data":{…}}`) fails its read instead, which answers as a miss.
  if (!json.startsWith(STORED_PREFIX) || !json.endsWith('}}')) {
    throw new Error('response cache: stored entry is not a response');
  }
  let data: ExecutionResult['data'];
  let parsed = false;
  const result: ExecutionResult & { stringify(value: unknown): string } = {
    stringify: (value) =>
      value === result && !parsed && !('errors' in result) && !('extensions' in result)
        ? json
        : JSON.stringify(value),
  };
  return Object.defineProperty(result, 'data', {
    enumerable: true,
    configurable: true,
    get() {
      if (!parsed) data = (JSON.parse(json) as ExecutionResult).data;
      parsed = true;
      return data;
    },
    set(value: ExecutionResult['data']) {
      data = value;
      parsed = true;
    },
  });
}

/**
 * Whole query responses in the shared cache, keyed by document, variables and viewer scope. An
 * entry is filed under the tags of every type the query reaches, and the same after-commit
 * invalidations that drop entity entries drop it; it is stored only if none of those tags moved
 * since the lookup missed, so a response computed before a write is never stored after it.
 */
export function useResponseCache<Context>(options: ResponseCacheOptions<Context>): Plugin {
  // Per document, per operation: each operation of a document reaches its own types.
  const plans = new WeakMap<DocumentNode, Map<OperationDefinitionNode, DocumentPlan>>();
  // Request digests by document hash, operation name and variables: a repeated request hashes
  // nothing.
  const digests = new Map<string, string>();
  // Early plans by document text, then by operation name exactly as the request gave it (absent:
  // null), filled only where the whole path executed that pair as a cacheable query.
  const earlyPlans = new Map<string, Map<string | null, EarlyPlan>>();
  let rememberedVariableSets = 0;
  const planFor = (
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
  ): DocumentPlan => {
    const byOperation = plans.get(document) ?? new Map<OperationDefinitionNode, DocumentPlan>();
    plans.set(document, byOperation);
    let plan = byOperation.get(operation);
    if (!plan) {
      plan = {
        tags: dependencies(
          schema,
          document,
          operation,
          options.typeTags,
          options.uncachedRootFields,
          options.interfaceOnlyTypes,
        ),
        hash: createHash('sha256')
          .update(getDocumentString(document) ?? print(document))
          .digest('base64url'),
      };
      byOperation.set(operation, plan);
    }
    return plan;
  };
  /** `variables`: the request's variables as JSON (`{}` when absent). */
  const keyOf = (
    scope: string,
    hash: string,
    operationName: string | null | undefined,
    variables: string,
  ): string => {
    const asked = `${hash}\n${operationName ?? ''}\n${variables}`;
    let request = digests.get(asked);
    if (request === undefined) {
      request = createHash('sha256').update(asked).digest('base64url');
      if (asked.length <= REMEMBERED_KEY_LENGTH) {
        if (digests.size >= REMEMBERED_DIGESTS) digests.clear();
        digests.set(asked, request);
      }
    }
    return `response:${scope}:${request}`;
  };
  const remember = (
    params: GraphQLParams,
    document: DocumentNode,
    variables: string,
    planned: Omit<EarlyPlan, 'variables'>,
  ) => {
    const text = params.query;
    // Only the text this document was parsed from: a persisted operation's stand-in is not one.
    if (text === undefined || text.length > REMEMBERED_TEXT_LENGTH) return;
    if (variables.length > REMEMBERED_KEY_LENGTH || getDocumentString(document) !== text) return;
    const operationName = params.operationName ?? null;
    let plan = earlyPlans.get(text)?.get(operationName);
    if (plan?.variables.has(variables)) return;
    if (earlyPlans.size >= REMEMBERED_TEXTS || rememberedVariableSets >= REMEMBERED_VARIABLE_SETS) {
      earlyPlans.clear();
      rememberedVariableSets = 0;
      plan = undefined;
    }
    if (!plan) {
      plan = { ...planned, variables: new Set() };
      const byName = earlyPlans.get(text) ?? new Map<string | null, EarlyPlan>();
      earlyPlans.set(text, byName);
      byName.set(operationName, plan);
    }
    plan.variables.add(variables);
    rememberedVariableSets += 1;
  };
  const early = options.early;

  /** The plan of a request that may be answered early, or undefined. */
  const earlyPlanOf = (
    params: GraphQLParams,
    request: Request,
  ): { plan: EarlyPlan; variables: string } | undefined => {
    if (typeof params.query !== 'string') return undefined;
    const plan = earlyPlans.get(params.query)?.get(params.operationName ?? null);
    if (!plan) return undefined;
    const variables = params.variables == null ? '{}' : JSON.stringify(params.variables);
    if (!plan.variables.has(variables)) return undefined;
    // The debug header asks for the executed request's SQL and cache statistics.
    if (request.headers.has(DEBUG_HEADER)) return undefined;
    if (STREAMED_ACCEPT.test(request.headers.get('accept') ?? '')) return undefined;
    return { plan, variables };
  };

  /**
   * Answers a hit, else hands the request to `next` (the whole path). It runs as yoga's params
   * handler, once every onParams hook has passed the request (yoga's own checks of the params
   * run after this plugin's hook).
   */
  const answerEarly = async (
    early: EarlyAnswers,
    payload: Parameters<ParamsHandler>[0],
    next: ParamsHandler,
  ): Promise<ExecutionResult | AsyncIterable<ExecutionResult>> => {
    const { params, request, context: serverContext } = payload;
    const planned = earlyPlanOf(params, request);
    if (!planned) return next(payload);
    let viewer: EarlyViewer;
    try {
      viewer = await early.viewerOf(request, serverContext);
    } catch {
      return next(payload);
    }
    const { plan, variables } = planned;
    const key = keyOf(viewer.scope, plan.hash, params.operationName, variables);
    // Counted in the cache's totals only: per-request statistics are read from the debug
    // header's extensions, and a request with that header takes the whole path.
    const found = await options.cache.find<ExecutionResult>(key, {
      name: 'response',
      tags: plan.tags,
      decode: storedResult,
    });
    if (found) {
      early.answered(serverContext, plan.operation, viewer.sql);
      return found;
    }
    if (found === undefined) (serverContext as WithCacheUnreached)[CACHE_UNREACHED] = true;
    return next(payload);
  };

  return {
    onParams: early
      ? ({ params, paramsHandler, setParamsHandler }) => {
          // The full check runs in the handler, on the params every hook has passed.
          if (typeof params.query !== 'string' || !earlyPlans.has(params.query)) return;
          setParamsHandler((payload) => answerEarly(early, payload, paramsHandler));
        }
      : undefined,
    onExecute({ args, executeFn, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query') return;
      const { tags, hash } = planFor(args.schema, args.document, operation);
      if (!tags) return;
      const context = args.contextValue as unknown as Context &
        WithCacheUnreached & { params?: GraphQLParams };
      const variables = JSON.stringify(args.variableValues ?? {});
      if (early && context.params) {
        remember(context.params, args.document, variables, {
          tags,
          hash,
          operation: operation.name?.value,
        });
      }
      if (context[CACHE_UNREACHED]) return;
      const key = keyOf(options.scopeOf(context), hash, args.operationName, variables);
      setExecuteFn(async (executionArgs) => {
        let fresh: Awaited<ReturnType<typeof executeFn>> | undefined;
        const found = await options.cache.getOrLoad<ExecutionResult>([key], {
          name: 'response',
          ttlSeconds: options.ttlSeconds,
          stats: options.statsOf(context),
          tagsOf: () => tags,
          decode: storedResult,
          load: async () => {
            fresh = await executeFn(executionArgs);
            const storable =
              !(Symbol.asyncIterator in fresh) && !fresh.errors?.length && fresh.data != null;
            return storable ? new Map([[key, { data: fresh.data }]]) : new Map();
          },
        });
        return fresh ?? found.get(key)!;
      });
    },
  };
}
