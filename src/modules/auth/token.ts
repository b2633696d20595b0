import { createHash, randomBytes } from 'node:crypto';

const TOKEN_PREFIX = 'qr_';

/** 32 random bytes; only the SHA-256 of a token is ever stored. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Reads `Bearer <token>` (HTTP header or graphql-ws connection param). */
export function bearerToken(authorization: unknown): string | null {
  if (typeof authorization !== 'string') return null;
  const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  return match?.[1] ?? null;
}
