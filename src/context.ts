import type { APQStore } from '@graphql-yoga/plugin-apq';
import type { Config } from './config.ts';
import { countingDb, type Db, type SqlStats } from './db/database.ts';
import { appError } from './errors.ts';
import type { Cache, CacheStats } from './infra/cache.ts';
import type { Logger } from './infra/logger.ts';
import type { Metrics } from './infra/metrics.ts';
import type { PostgresListener } from './infra/pg-listener.ts';
import type { QuirePubSub } from './infra/pubsub.ts';
import type { RateLimiter } from './infra/rate-limit.ts';
import { bearerToken, hashToken } from './modules/auth/token.ts';
import type { Viewer } from './modules/auth/viewer.ts';
import type { ViewerStreams } from './modules/auth/viewer-streams.ts';
import type { TrustedDocuments } from './plugins/persisted-operations.ts';

/** Long-lived shared parts, built once by main.ts (or a test) and handed to createApp. */
export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Db;
  pubsub: QuirePubSub;
  cache: Cache;
  rateLimiter: RateLimiter;
  /** Documents registered by automatic persisted queries, shared through Redis when configured. */
  apqStore: APQStore;
  /** Set from TRUSTED_DOCUMENTS: only these operations run (trusted-documents mode). */
  trustedDocuments?: TrustedDocuments;
  metrics: Metrics;
  /**
   * This instance's long-lived streams and cached viewers by token: a revoked token or new role
   * ends or drops them.
   */
  viewerStreams: ViewerStreams;
  /**
   * The process's one Postgres LISTEN connection (idle until a channel is listened to): the
   * pipeline worker wakes on it, and without Redis `signals` and cache invalidations travel on it.
   */
  listener: PostgresListener;
  redisReachable(): Promise<boolean>;
}

/** One per request (and one per subscription event): nothing here outlives it. */
export interface Context {
  deps: AppDeps;
  config: Config;
  /** Counts this request's statements (see QueryCountPlugin). */
  db: Db;
  sql: SqlStats;
  cacheStats: CacheStats;
  viewer: Viewer | null;
  /** SHA-256 of the bearer token the viewer was resolved from; null when anonymous. */
  tokenHash: string | null;
  clientKey: string;
  /** This request's logger: its lines carry the request id (see plugins/request-log.ts). */
  log: Logger;
}

export interface ContextSource {
  authorization: unknown;
  clientAddress: string | null;
}

/**
 * The request's context. Synchronous for an anonymous request: a promise here would make every
 * step after it in yoga's and envelop's hook chains asynchronous too.
 */
export function createContext(deps: AppDeps, source: ContextSource): Context | Promise<Context> {
  const sql: SqlStats = { queries: 0, statements: [] };
  const db = countingDb(deps.db, sql);
  const token = bearerToken(source.authorization);
  if (source.authorization != null && source.authorization !== '' && !token) {
    return Promise.reject(appError('UNAUTHENTICATED', 'Authorization must be "Bearer <token>"'));
  }
  if (!token) return requestContext(deps, db, sql, source, null, null);
  const tokenHash = hashToken(token);
  return deps.viewerStreams.findViewer(db, tokenHash).then((viewer) => {
    if (!viewer) throw appError('UNAUTHENTICATED', 'Unknown or revoked token');
    return requestContext(deps, db, sql, source, viewer, tokenHash);
  });
}

/** A module function rather than a closure made per request: every request builds one. */
function requestContext(
  deps: AppDeps,
  db: Db,
  sql: SqlStats,
  source: ContextSource,
  viewer: Viewer | null,
  tokenHash: string | null,
): Context {
  return {
    deps,
    config: deps.config,
    db,
    sql,
    cacheStats: {},
    viewer,
    tokenHash,
    clientKey: viewer ? `user:${viewer.id}` : `ip:${source.clientAddress ?? 'unknown'}`,
    log: deps.logger,
  };
}

/** A fresh copy for each subscription event so loaders never serve data older than the event. */
export function freshEventContext(context: Context): Partial<Context> {
  const sql: SqlStats = { queries: 0, statements: [] };
  return { sql, cacheStats: {}, db: countingDb(context.deps.db, sql) };
}

/** Cache options for entities by id (invalidated on every write). */
export const entityCache = (ctx: Context) => ({
  ttlSeconds: ctx.config.CACHE_TTL_SECONDS,
  stats: ctx.cacheStats,
});

/** Cache options for computed results (aggregates, search): shorter-lived. */
export const computedCache = (ctx: Context) => ({
  ttlSeconds: ctx.config.CACHE_COMPUTED_TTL_SECONDS,
  stats: ctx.cacheStats,
});

/**
 * Wraps a DataLoader batch function. With LOADER_BATCHING=off every key is loaded on its own:
 * the N+1 baseline the benchmark compares against, running through the same resolvers.
 */
export function batchable<Args extends unknown[], Result>(
  load: (keys: string[], ctx: Context, ...rest: Args) => Promise<readonly Result[]>,
): (keys: string[], ctx: Context, ...rest: Args) => Promise<readonly Result[]> {
  return async (keys, ctx, ...rest) => {
    if (ctx.config.LOADER_BATCHING) return load(keys, ctx, ...rest);
    const perKey = await Promise.all(keys.map((key) => load([key], ctx, ...rest)));
    return perKey.flat(1) as Result[];
  };
}
