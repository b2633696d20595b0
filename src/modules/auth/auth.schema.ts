import { z } from 'zod';
import { builder } from '../../builder.ts';
import { batchable, type Context } from '../../context.ts';
import { groupByKey, inKeyOrder } from '../../db/batch.ts';
import { appError, mutationErrors, notFound } from '../../errors.ts';
import { parseInput } from '../../validation.ts';
import { UserNode } from '../user/user.schema.ts';
import {
  type ApiTokenRow,
  insertToken,
  revokeToken,
  tokensByIds,
  tokensByUsers,
} from './auth.repository.ts';

/** A token is visible to its owner and to admins only. */
const canSeeToken = (ctx: Context, token: ApiTokenRow) =>
  ctx.viewer !== null && (ctx.viewer.id === token.user_id || ctx.viewer.role === 'ADMIN');

export const ApiTokenNode = builder.loadableNode('ApiToken', {
  description:
    'A bearer token; only its hash is stored, the secret is shown once at creation. Visible to ' +
    'its owner and to admins: for anyone else `node`/`nodes` answer null, as for an unknown id.',
  id: { resolve: (token: ApiTokenRow) => token.id },
  // Uncached: a revocation must show at once, and few requests read tokens.
  load: batchable(async (ids: string[], ctx) =>
    inKeyOrder(ids, await tokensByIds(ctx.db, ids), (token) => token.id).map((token) =>
      token && canSeeToken(ctx, token) ? token : null,
    ),
  ),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'A label chosen at creation (1–100 characters).' }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was created.' }),
    lastUsedAt: t.expose('last_used_at', {
      type: 'DateTime',
      nullable: true,
      description:
        'When a request last authenticated with it (written at most once a minute); null if never used.',
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
    type: ApiTokenNode,
    description: 'Newest first. Visible to the user and to admins.',
    authScopes: (user, _args, ctx) => ctx.viewer?.id === user.id || ctx.viewer?.role === 'ADMIN',
    load: batchable(async (userIds: string[], ctx) =>
      groupByKey(userIds, await tokensByUsers(ctx.db, userIds), (token) => token.user_id),
    ),
    resolve: (user) => user.id,
  }),
);

const tokenName = z.string().trim().min(1).max(100);

builder.relayMutationField(
  'createApiToken',
  {
    description: 'The label of the new token and, for admins, whose it is.',
    inputFields: (t) => ({
      name: t.string({
        required: true,
        description: 'A label, 1–100 characters after trimming; BAD_USER_INPUT otherwise.',
      }),
      userId: t.globalID({
        for: UserNode,
        description: 'Whose token (admins only; FORBIDDEN for others). Defaults to the viewer.',
      }),
    }),
  },
  {
    description: `A new token for the viewer, or for \`input.userId\` (admins). Signed-in callers only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, RATE_LIMITED')}`,
    authScopes: { signedIn: true },
    resolve: async (_root, { input }, ctx) => {
      const name = parseInput(tokenName, input.name, 'input.name');
      const userId = input.userId?.id ?? ctx.viewer!.id;
      if (userId !== ctx.viewer!.id && ctx.viewer!.role !== 'ADMIN') {
        throw appError('FORBIDDEN', 'Only admins create tokens for other users');
      }
      const { token, id } = await insertToken(ctx.db, userId, name);
      const [apiToken] = (await tokensByUsers(ctx.db, [userId])).filter((row) => row.id === id);
      return { token, apiToken: apiToken! };
    },
  },
  {
    description: 'The new token: its secret (shown only here) and the stored token.',
    outputFields: (t) => ({
      token: t.exposeString('token', {
        description: 'The secret: send it as `Authorization: Bearer <token>`. Shown only here.',
      }),
      apiToken: t.field({
        type: ApiTokenNode,
        description: 'The stored token (its hash is kept, never the secret).',
        resolve: (created) => created.apiToken,
      }),
    }),
  },
);

builder.relayMutationField(
  'revokeApiToken',
  {
    description: 'The token to revoke.',
    inputFields: (t) => ({
      id: t.globalID({
        for: ApiTokenNode,
        required: true,
        description:
          'The token’s global `id`. NOT_FOUND when it does not exist or the viewer may not see it (not theirs, for non-admins); CONFLICT when already revoked.',
      }),
    }),
  },
  {
    description:
      'Revokes one of the viewer’s tokens (admins: anyone’s). Takes effect at once: requests ' +
      'with it answer UNAUTHENTICATED, its subscriptions end with UNAUTHENTICATED and its ' +
      `graphql-ws connections close with 4403, on every instance. ${mutationErrors('UNAUTHENTICATED, NOT_FOUND, CONFLICT, BAD_USER_INPUT (an id of another type), RATE_LIMITED')}`,
    authScopes: { signedIn: true },
    resolve: async (_root, { input }, ctx) => {
      const token = await ApiTokenNode.getDataloader(ctx).load(input.id.id);
      if (!token) throw notFound('Token');
      const revoked = await revokeToken(ctx.db, token.id);
      if (!revoked) throw appError('CONFLICT', 'The token is already revoked');
      await ctx.deps.viewerStreams.publish({
        userId: token.user_id,
        tokenHash: revoked.token_hash,
      });
      return { apiToken: revoked };
    },
  },
  {
    description: 'The token as revoked.',
    outputFields: (t) => ({
      apiToken: t.field({
        type: ApiTokenNode,
        description: 'The token, with `revokedAt` set.',
        resolve: (payload) => payload.apiToken,
      }),
    }),
  },
);
