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
    id: t.exposeID('id', { description: 'The token’s id, as `revokeApiToken(id:)` takes it.' }),
    name: t.exposeString('name', { description: 'A label chosen at creation (1–100 characters).' }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was created.' }),
    lastUsedAt: t.expose('last_used_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When a request last authenticated with it; null if never used.',
    }),
    revokedAt: t.expose('revoked_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When it was revoked; null while it is valid.',
    }),
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
    description:
      'What `createApiToken` returns: the secret (shown only here) and the stored token.',
    fields: (t) => ({
      token: t.exposeString('token', {
        description: 'The secret: send it as `Authorization: Bearer <token>`.',
      }),
      apiToken: t.field({
        type: ApiToken,
        description: 'The stored token (its hash is kept, never the secret).',
        resolve: (created) => created.apiToken,
      }),
    }),
  });

const tokenName = z.string().trim().min(1).max(100);

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: CreatedToken,
    description: 'A new token for the viewer, or for `userId` (admins).',
    authScopes: { signedIn: true },
    args: {
      name: t.arg.string({
        required: true,
        description: 'A label, 1–100 characters after trimming; BAD_USER_INPUT otherwise.',
      }),
      userId: t.arg.globalID({
        for: UserNode,
        description: 'Whose token (admins only; FORBIDDEN for others). Defaults to the viewer.',
      }),
    },
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
    args: {
      id: t.arg.id({
        required: true,
        description:
          'The token’s `id`. NOT_FOUND when it does not exist or is not the viewer’s (non-admins); CONFLICT when already revoked.',
      }),
    },
    resolve: async (_root, args, ctx) => {
      const id = String(args.id);
      if (!isInt8Id(id)) throw notFound('Token');
      const owner = await tokenOwner(ctx.db, id);
      if (!owner || (owner !== ctx.viewer!.id && ctx.viewer!.role !== 'ADMIN'))
        throw notFound('Token');
      const revoked = await revokeToken(ctx.db, id);
      if (!revoked) throw appError('CONFLICT', 'The token is already revoked');
      await ctx.deps.viewerStreams.publish({ userId: owner, tokenHash: revoked.token_hash });
      return revoked;
    },
  }),
}));
