import type { Db } from '../../db/database.ts';
import { timestampMillis } from '../../db/timestamps.ts';
import { generateToken, hashToken } from './token.ts';
import type { Viewer } from './viewer.ts';

const LAST_USED_RESOLUTION_MS = 60_000;

/** The viewer for a live token, or null for an unknown or revoked one. */
export async function findViewerByToken(db: Db, token: string): Promise<Viewer | null> {
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select(['users.id', 'users.role', 'api_tokens.id as tokenId', 'api_tokens.last_used_at'])
    .where('api_tokens.token_hash', '=', hashToken(token))
    .where('api_tokens.revoked_at', 'is', null)
    .executeTakeFirst();
  if (!row) return null;
  // A write per request would churn the row; a minute's resolution is enough for audits.
  if (
    !row.last_used_at ||
    timestampMillis(row.last_used_at) < Date.now() - LAST_USED_RESOLUTION_MS
  ) {
    await db
      .updateTable('api_tokens')
      .set({ last_used_at: new Date().toISOString() })
      .where('id', '=', row.tokenId)
      .execute();
  }
  return { id: row.id, role: row.role };
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

export async function tokenOwner(db: Db, id: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('api_tokens')
    .select('user_id')
    .where('id', '=', id)
    .executeTakeFirst();
  return row?.user_id;
}
