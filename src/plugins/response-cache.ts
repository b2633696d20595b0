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
import type { Plugin } from 'graphql-yoga';
import type { Cache, CacheStats } from '../infra/cache.ts';

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

  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query') return;
      const { tags, hash } = planFor(args.schema, args.document, operation);
      if (!tags) return;
      const context = args.contextValue as Context;
      const asked = `${hash}\n${args.operationName ?? ''}\n${JSON.stringify(args.variableValues ?? {})}`;
      let request = digests.get(asked);
      if (request === undefined) {
        request = createHash('sha256').update(asked).digest('base64url');
        if (asked.length <= REMEMBERED_KEY_LENGTH) {
          if (digests.size >= REMEMBERED_DIGESTS) digests.clear();
          digests.set(asked, request);
        }
      }
      const key = `response:${options.scopeOf(context)}:${request}`;
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
