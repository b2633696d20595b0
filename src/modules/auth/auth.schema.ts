import { z } from 'zod';
import { builder } from '../../builder.ts';
import { batchable } from '../../context.ts';
import { groupByKey } from '../../db/batch.ts';
import { isInt8Id } from '../../db/postgres-values.ts';
import { appError, notFound } from '../../errors.ts';
import { parseInput } from '../../validation.ts';
import { UserNode } from '../user/user.schema.ts';
import {
  type ApiTokenRow,
  insertToken,
  revokeToken,
  tokenOwner,
  tokensByUsers,
} from './auth.repository.ts';

const ApiToken = builder.objectRef<ApiTokenRow>('ApiToken').implement({
  description: 'A bearer token; only its hash is stored, the secret is shown once at creation.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    createdAt: t.expose('created_at', { type: 'DateTime' }),
    lastUsedAt: t.expose('last_used_at', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revoked_at', { type: 'DateTime', nullable: true }),
  }),
});

builder.objectField(UserNode, 'apiTokens', (t) =>
  t.loadableList({
    type: ApiToken,
    description: 'Visible to the user and to admins.',
    authScopes: (user, _args, ctx) => ctx.viewer?.id === user.id || ctx.viewer?.role === 'ADMIN',
    load: batchable(async (userIds: string[], ctx) =>
      groupByKey(userIds, await tokensByUsers(ctx.db, userIds), (token) => token.user_id),
    ),
    resolve: (user) => user.id,
  }),
);

const CreatedToken = builder
  .objectRef<{ token: string; apiToken: ApiTokenRow }>('CreatedApiToken')
  .implement({
    fields: (t) => ({
      token: t.exposeString('token', {
        description: 'The secret: send it as `Authorization: Bearer <token>`.',
      }),
      apiToken: t.field({ type: ApiToken, resolve: (created) => created.apiToken }),
    }),
  });

const tokenName = z.string().trim().min(1).max(100);

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: CreatedToken,
    description: 'A new token for the viewer, or for `userId` (admins).',
    authScopes: { signedIn: true },
    args: { name: t.arg.string({ required: true }), userId: t.arg.globalID({ for: UserNode }) },
    resolve: async (_root, args, ctx) => {
      const name = parseInput(tokenName, args.name, 'name');
      const userId = args.userId?.id ?? ctx.viewer!.id;
      if (userId !== ctx.viewer!.id && ctx.viewer!.role !== 'ADMIN') {
        throw appError('FORBIDDEN', 'Only admins create tokens for other users');
      }
      const { token, id } = await insertToken(ctx.db, userId, name);
      const [apiToken] = (await tokensByUsers(ctx.db, [userId])).filter((row) => row.id === id);
      return { token, apiToken: apiToken! };
    },
  }),
  revokeApiToken: t.field({
    type: ApiToken,
    description:
      'Revokes one of the viewer’s tokens (admins: anyone’s). Takes effect at once: requests with it answer UNAUTHENTICATED, its subscriptions end with UNAUTHENTICATED and its graphql-ws connections close with 4403, on every instance.',
    authScopes: { signedIn: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const id = String(args.id);
      if (!isInt8Id(id)) throw notFound('Token');
      const owner = await tokenOwner(ctx.db, id);
      if (!owner || (owner !== ctx.viewer!.id && ctx.viewer!.role !== 'ADMIN'))
        throw notFound('Token');
      const revoked = await revokeToken(ctx.db, id);
      if (!revoked) throw appError('CONFLICT', 'The token is already revoked');
      ctx.deps.viewerStreams.publish({ userId: owner, tokenHash: revoked.token_hash });
      return revoked;
    },
  }),
}));
