import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type APQStore, createInMemoryAPQStore, useAPQ } from '@graphql-yoga/plugin-apq';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import type { GraphQLParams, OnParamsEventPayload, Plugin } from 'graphql-yoga';
import { ConfigError } from '../config.ts';
import { appError } from '../errors.ts';
import type { CircuitBreaker } from '../infra/circuit-breaker.ts';
import type { Logger } from '../infra/logger.ts';
import type { RedisClient } from '../infra/redis.ts';

/** Lowercase hex SHA-256 of a document's exact text: the id APQ clients and the manifest use. */
export const documentHash = (document: string): string =>
  createHash('sha256').update(document).digest('hex');

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Registered APQ documents: in Redis under `<prefix>apq:<sha256>` (one key each, so any Cluster
 * slot), shared by every instance, each kept `ttlSeconds` from its last registration. Redis
 * failures and an open circuit read as "not registered" and skip the write: the client resends
 * the text, which runs as usual, so Redis being down costs bytes, never an error.
 */
export function createRedisApqStore(options: {
  redis: RedisClient;
  prefix: string;
  breaker: CircuitBreaker;
  ttlSeconds: number;
  logger: Logger;
}): APQStore {
  const { redis, breaker, ttlSeconds, logger } = options;
  const key = (hash: string) => `${options.prefix}apq:${hash}`;
  return {
    async get(hash) {
      if (!SHA256_HEX.test(hash)) return null;
      try {
        return await breaker.run(() => redis.get(key(hash)));
      } catch (error) {
        logger.debug({ err: (error as Error).message }, 'apq lookup skipped: redis unavailable');
        return null;
      }
    },
    async set(hash, document) {
      try {
        await breaker.run(() => redis.set(key(hash), document, 'EX', ttlSeconds));
      } catch (error) {
        logger.debug({ err: (error as Error).message }, 'apq registration skipped');
      }
    },
  };
}

/** Without Redis: this process's own registrations (an LRU of `max` documents). */
export const createMemoryApqStore = (options: { max: number; ttlSeconds: number }): APQStore =>
  createInMemoryAPQStore({ max: options.max, ttl: options.ttlSeconds * 1000 });

/** The trusted documents: SHA-256 hash → document text, every hash checked against its text. */
export type TrustedDocuments = ReadonlyMap<string, string>;

/**
 * Reads a manifest in the shape graphql-codegen's client preset (`persistedDocuments`) and
 * `npm run manifest` write: one JSON object mapping each document's SHA-256 (lowercase hex) to
 * its text. Throws a ConfigError naming the file and every problem: a hash that is not the
 * SHA-256 of its text would let the manifest run something other than what was reviewed.
 */
export function loadTrustedDocuments(path: string): TrustedDocuments {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`TRUSTED_DOCUMENTS ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`TRUSTED_DOCUMENTS ${path}: expected a JSON object of sha256 → document`);
  }
  const problems: string[] = [];
  const documents = new Map<string, string>();
  for (const [hash, document] of Object.entries(parsed)) {
    if (typeof document !== 'string') problems.push(`${hash}: the document is not a string`);
    else if (documentHash(document) !== hash)
      problems.push(`${hash}: not the SHA-256 of its document`);
    else documents.set(hash, document);
  }
  if (problems.length > 0) {
    throw new ConfigError(`TRUSTED_DOCUMENTS ${path}:\n  ${problems.join('\n  ')}`);
  }
  return documents;
}

const notFound = () =>
  appError('PERSISTED_QUERY_NOT_FOUND', 'PersistedQueryNotFound', { http: { status: 404 } });

const trustedOnly = () =>
  appError(
    'PERSISTED_QUERY_ONLY',
    'PersistedQueryOnly: this server runs only trusted documents; send the sha256Hash of an operation in its manifest as extensions.persistedQuery',
  );

/**
 * The APQ plugin, its `onParams` called only for requests that carry
 * `extensions.persistedQuery`: the plugin ignores the others, but as an async function it handed
 * every request a promise, which made the rest of yoga's hook chain asynchronous.
 */
function withoutPersistedQuery(apq: Plugin): Plugin {
  const onParams = apq.onParams!;
  return {
    ...apq,
    onParams: (payload) =>
      payload.params.extensions?.persistedQuery == null ? undefined : onParams(payload),
  };
}

export type PersistedOperationsMode =
  | { kind: 'automatic'; store: APQStore }
  | { kind: 'trusted'; documents: TrustedDocuments; allowRawDocuments: boolean };

/**
 * Replaces a persisted operation's hash with its document before parsing, for HTTP (yoga's
 * onParams) and graphql-ws (`resolveParams`), so every limit, rate limit and cache sees the
 * same document whichever way it came. Errors are thrown before any context, SQL or Redis
 * call of the request (apart from the APQ lookup itself):
 * - automatic (APQ, @graphql-yoga/plugin-apq): a hash alone runs the registered document or
 *   answers `PersistedQueryNotFound` (PERSISTED_QUERY_NOT_FOUND, 404) so the client resends it
 *   with the text; hash + text registers the text after checking its hash
 *   (PERSISTED_QUERY_MISMATCH, 400); text alone runs as usual.
 * - trusted (@graphql-yoga/plugin-persisted-operations): a hash outside the manifest answers
 *   PERSISTED_QUERY_NOT_FOUND (404); a request with text, or with neither, PERSISTED_QUERY_ONLY
 *   (a request error: 400, or 200 under application/json), unless `allowRawDocuments`
 *   (development, for GraphiQL).
 */
export function persistedOperations(mode: PersistedOperationsMode): {
  plugin: Plugin;
  resolveParams(params: GraphQLParams): Promise<GraphQLParams>;
} {
  const plugin: Plugin =
    mode.kind === 'automatic'
      ? withoutPersistedQuery(useAPQ({ store: mode.store, hash: documentHash }))
      : usePersistedOperations({
          getPersistedOperation: (hash) => mode.documents.get(hash) ?? null,
          allowArbitraryOperations: mode.allowRawDocuments,
          customErrors: { notFound, persistedQueryOnly: trustedOnly, keyNotFound: trustedOnly },
        });
  const onParams = plugin.onParams!;
  return {
    plugin,
    async resolveParams(params) {
      let resolved = params;
      await onParams({
        params,
        setParams: (next: GraphQLParams) => {
          resolved = next;
        },
        // Neither plugin reads the request with these options; the context only keys a WeakMap.
        request: undefined,
        context: {},
        fetchAPI: globalThis,
      } as unknown as OnParamsEventPayload<Record<string, unknown>>);
      return resolved;
    },
  };
}
