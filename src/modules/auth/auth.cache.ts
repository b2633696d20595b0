import { typesDependingOn } from '../../infra/response-cache-plugin.ts';

/** Any token created or revoked: cached responses that show tokens depend on it. */
export const ALL_TOKENS_TAG = 'api-tokens';

/**
 * Tokens are visible to their owner and admins only; the response cache is keyed by viewer, so
 * one tag suffices. Listing the type keeps `node`/`nodes` queries cacheable (their results may
 * be any Node type). `lastUsedAt` is written at most once a minute and may lag by the cache TTL.
 */
export const apiTokenResponseTags = typesDependingOn([ALL_TOKENS_TAG], ['ApiToken']);
