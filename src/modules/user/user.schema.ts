import { z } from 'zod';
import { builder } from '../../builder.ts';
import { batchable, type Context, entityCache } from '../../context.ts';
import { connectionSelection, pageLimits, parsePageArgs, toPage } from '../../db/keyset.ts';
import { withPgErrors } from '../../db/pg-errors.ts';
import type { UserRow } from '../../db/tables.ts';
import { mutationErrors, notFound } from '../../errors.ts';
import { parseInput } from '../../validation.ts';
import { isStaff } from '../auth/viewer.ts';
import { ALL_USERS_TAG } from './user.cache.ts';
import {
  type AuthorColumn,
  authorColumns,
  authorOf,
  countUsers,
  insertUser,
  listUsers,
  updateUserRole,
  userOrder,
  usersByIds,
  type WithAuthor,
} from './user.repository.ts';

export const Role = builder.enumType('Role', {
  description: 'What a user may do: ADMIN manages users, EDITOR edits and publishes any post.',
  values: {
    ADMIN: { description: 'Everything an editor may, plus users, roles and anyone’s tokens.' },
    EDITOR: { description: 'Edits, publishes and runs the pipeline over any post.' },
    AUTHOR: { description: 'Writes posts and runs the pipeline over their own.' },
    VIEWER: { description: 'Reads published posts and comments; writes nothing but comments.' },
  } as const,
});

export const UserNode = builder.loadableNode('User', {
  description: 'Someone who writes posts and comments.',
  id: { resolve: (user: UserRow) => user.id },
  load: batchable((ids: string[], ctx) =>
    ctx.deps.cache.rowsByIds(
      'user',
      ids,
      (missing) => usersByIds(ctx.db, missing),
      entityCache(ctx),
    ),
  ),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Display name, 1–100 characters.' }),
    email: t.string({
      description: 'Visible to the user themselves and to editors; null otherwise.',
      nullable: true,
      resolve: (user, _args, ctx) =>
        ctx.viewer && (ctx.viewer.id === user.id || isStaff(ctx.viewer)) ? user.email : null,
    }),
    role: t.expose('role', { type: Role, description: 'What the user may do.' }),
    createdAt: t.expose('created_at', {
      type: 'DateTime',
      description: 'When the account was created.',
    }),
  }),
});

/**
 * Rows that joined their author's columns fill the user loader, so `author` costs no query of
 * its own. The naive baseline (LOADER_BATCHING=off) loads every author itself.
 */
export function primeAuthors(ctx: Context, rows: readonly WithAuthor<{ author_id: string }>[]) {
  if (!ctx.config.LOADER_BATCHING) return;
  const users = UserNode.getDataloader(ctx);
  for (const row of rows) users.prime(row.author_id, authorOf(row));
}

/**
 * What an `author` field resolves to: the author itself when the row joined the author's columns
 * (a post list or comment page statement did), answered at once without a DataLoader lookup and
 * its promise per item; else the author's id, for the user loader (batched, or primed by
 * `primeAuthors`). The naive baseline (LOADER_BATCHING=off) loads every author itself.
 */
export function authorOrId(
  ctx: Context,
  row: { author_id: string } | WithAuthor<{ author_id: string }>,
): UserRow | string {
  return ctx.config.LOADER_BATCHING && 'author_name' in row && row.author_name !== undefined
    ? authorOf(row)
    : row.author_id;
}

/** The joined author columns each User field reads; the id is the row's own `author_id`. */
const authorColumnsOfField = new Map<string, readonly AuthorColumn[]>([
  ['id', []],
  ['__typename', []],
  ['name', ['users.name as author_name']],
  ['email', ['users.email as author_email']],
  ['role', ['users.role as author_role']],
  ['createdAt', ['users.created_at as author_created_at']],
]);

/**
 * The author columns a list joins for the fields selected on its `author`: those they read (all
 * of them for a field not named above), and the name always, by which authorOrId knows the row
 * joined its author.
 */
export function authorColumnsFor(fields: ReadonlySet<string>): AuthorColumn[] {
  const columns: AuthorColumn[] = ['users.name as author_name'];
  for (const field of fields) columns.push(...(authorColumnsOfField.get(field) ?? authorColumns));
  return columns;
}

builder.queryFields((t) => ({
  viewer: t.field({
    type: UserNode,
    nullable: true,
    description: 'The user the bearer token belongs to; null for anonymous requests.',
    resolve: (_root, _args, ctx) => ctx.viewer?.id ?? null,
  }),
  users: t.connection(
    {
      type: UserNode,
      description: 'All users, newest first.',
      resolve: async (_root, args, ctx, info) => {
        const page = parsePageArgs(args, userOrder, pageLimits(ctx.config));
        // A bare `totalCount` runs the count only.
        const rows = connectionSelection(info).page ? await listUsers(ctx.db, page) : [];
        return {
          ...toPage(rows, page, userOrder, (user) => ({ value: user.created_at, id: user.id })),
          totalCount: () => countUsers(ctx.db),
        };
      },
    },
    { name: 'UserConnection' },
    { name: 'UserEdge' },
  ),
}));

const newUser = z.object({
  email: z
    .string()
    .trim()
    .toLowerCase()
    .max(254)
    .regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address'),
  name: z.string().trim().min(1).max(100),
});

builder.relayMutationField(
  'createUser',
  {
    description: 'A new account.',
    inputFields: (t) => ({
      email: t.string({
        required: true,
        description:
          'Up to 254 characters, stored lowercased; BAD_USER_INPUT when not an address, CONFLICT when taken.',
      }),
      name: t.string({ required: true, description: '1–100 characters after trimming.' }),
      role: t.field({ type: Role, required: true, description: 'What the user may do.' }),
    }),
  },
  {
    description: `Creates an account; admins only. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, CONFLICT (email taken), RATE_LIMITED')}`,
    authScopes: { admin: true },
    resolve: async (_root, { input }, ctx) => {
      const { email, name } = parseInput(newUser, input);
      const user = await withPgErrors(() => insertUser(ctx.db, { email, name, role: input.role }), {
        users_email_lower_key: 'A user with this email already exists',
      });
      await ctx.deps.cache.invalidate([ALL_USERS_TAG]);
      return { user };
    },
  },
  {
    description: 'The account created.',
    outputFields: (t) => ({
      user: t.field({
        type: UserNode,
        description: 'The new user.',
        resolve: (payload) => payload.user,
      }),
    }),
  },
);

builder.relayMutationField(
  'setUserRole',
  {
    description: 'The user and their new role.',
    inputFields: (t) => ({
      userId: t.globalID({
        for: UserNode,
        required: true,
        description: 'The user; NOT_FOUND when there is none.',
      }),
      role: t.field({ type: Role, required: true, description: 'The new role.' }),
    }),
  },
  {
    description: `Changes a user's role; admins only. Takes effect at once: the user’s open subscriptions end with VIEWER_CHANGED. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED')}`,
    authScopes: { admin: true },
    resolve: async (_root, { input }, ctx) => {
      const user = await updateUserRole(ctx.db, input.userId.id, input.role);
      if (!user) throw notFound('User');
      await ctx.deps.cache.invalidate([`user:${user.id}`, ALL_USERS_TAG]);
      // The user's open streams were authorized under the old role.
      if (user.previous_role !== user.role)
        await ctx.deps.viewerStreams.publish({ userId: user.id, tokenHash: null });
      return { user };
    },
  },
  {
    description: 'The user with the new role.',
    outputFields: (t) => ({
      user: t.field({
        type: UserNode,
        description: 'The user as changed.',
        resolve: (payload) => payload.user,
      }),
    }),
  },
);
