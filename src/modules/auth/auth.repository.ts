import type { Db } from '../../db/database.ts';
import { generateToken, hashToken } from './token.ts';

/** Whom a live token (by hash) speaks for, with its row id and last use; undefined when unknown or revoked. */
export async function viewerByTokenHash(db: Db, tokenHash: string) {
  return db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select(['users.id', 'users.role', 'api_tokens.id as tokenId', 'api_tokens.last_used_at'])
    .where('api_tokens.token_hash', '=', tokenHash)
    .where('api_tokens.revoked_at', 'is', null)
    .executeTakeFirst();
}

/** Records that a token was just used (callers rate this: see LAST_USED_RESOLUTION_MS). */
export async function markTokenUsed(db: Db, tokenId: string): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: new Date().toISOString() })
    .where('id', '=', tokenId)
    .execute();
}

/** The hashes of a user's live tokens: what a role change must drop from the viewer cache. */
export async function liveTokenHashesOfUser(db: Db, userId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('api_tokens')
    .select('token_hash')
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
  return rows.map((row) => row.token_hash);
}

export async function insertToken(
  db: Db,
  userId: string,
  name: string,
): Promise<{ token: string; id: string }> {
  const token = generateToken();
  const { id } = await db
    .insertInto('api_tokens')
    .values({ user_id: userId, name, token_hash: hashToken(token) })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { token, id };
}

export async function tokensByUsers(db: Db, userIds: readonly string[]) {
  return db
    .selectFrom('api_tokens')
    .select(['id', 'user_id', 'name', 'created_at', 'last_used_at', 'revoked_at'])
    .where('user_id', 'in', userIds)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
}

export type ApiTokenRow = Awaited<ReturnType<typeof tokensByUsers>>[number];

/** Tokens by row id, in no particular order; unknown ids are absent. */
export async function tokensByIds(db: Db, ids: readonly string[]): Promise<ApiTokenRow[]> {
  return db
    .selectFrom('api_tokens')
    .select(['id', 'user_id', 'name', 'created_at', 'last_used_at', 'revoked_at'])
    .where('id', 'in', ids)
    .execute();
}

/** Revokes a live token; undefined when there is none with that id. */
export async function revokeToken(
  db: Db,
  id: string,
): Promise<(ApiTokenRow & { token_hash: string }) | undefined> {
  return db
    .updateTable('api_tokens')
    .set({ revoked_at: new Date().toISOString() })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning(['id', 'user_id', 'name', 'created_at', 'last_used_at', 'revoked_at', 'token_hash'])
    .executeTakeFirst();
}

/** Whom each live token (by hash) speaks for; revoked and unknown hashes are absent. */
export async function liveTokensByHashes(db: Db, hashes: readonly string[]) {
  return db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select(['api_tokens.token_hash', 'users.id as user_id', 'users.role'])
    .where('api_tokens.token_hash', 'in', hashes)
    .where('api_tokens.revoked_at', 'is', null)
    .execute();
}
