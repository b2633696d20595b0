import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { getNullableType, isListType } from 'graphql';
import type { Context } from './context.ts';
import { isInt8Id, isTimestamp } from './db/postgres-values.ts';
import { toRfc3339 } from './db/timestamps.ts';
import { appError, badInput } from './errors.ts';

const globalIdPattern = /^([A-Za-z]+):(\d+)$/;

/**
 * `Type:id` from a global ID; BAD_USER_INPUT (argument `id`) unless it has that shape and the id
 * is a positive int8, so no id outside bigint reaches SQL.
 */
export function decodeGlobalId(globalID: string): { typename: string; id: string } {
  const match = globalIdPattern.exec(Buffer.from(globalID, 'base64url').toString('utf8'));
  if (!match || !isInt8Id(match[2]!)) {
    throw badInput(`Invalid ID: ${globalID.slice(0, 64)}`, { argument: 'id' });
  }
  return { typename: match[1]!, id: match[2]! };
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
  Connection: { totalCount: () => Promise<number> };
  Scalars: {
    DateTime: { Input: string; Output: string };
    JSON: { Input: unknown; Output: unknown };
  };
  AuthScopes: {
    signedIn: boolean;
    writer: boolean;
    staff: boolean;
    admin: boolean;
  };
}>({
  plugins: [ScopeAuthPlugin, ComplexityPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authScopes: ({ viewer }) => ({
      signedIn: viewer !== null,
      writer: viewer !== null && viewer.role !== 'VIEWER',
      staff: viewer?.role === 'EDITOR' || viewer?.role === 'ADMIN',
      admin: viewer?.role === 'ADMIN',
    }),
    unauthorizedError: (_parent, ctx) =>
      ctx.viewer
        ? appError('FORBIDDEN', 'Your role does not allow this')
        : appError('UNAUTHENTICATED', 'Sign in with a bearer token to do this'),
  },
  complexity: {
    // A connection multiplies by its page size (its `edges` list then counts once); other
    // lists are small (tags, steps) and count 10.
    fieldComplexity: (args, ctx, field) => {
      const page = args as { first?: number | null; last?: number | null };
      const isConnection = 'first' in page || 'last' in page;
      const size = page.first ?? page.last ?? ctx.config.DEFAULT_PAGE_SIZE;
      const isList = isListType(getNullableType(field.type)) && field.name !== 'edges';
      return { field: 1, multiplier: isConnection ? Math.max(1, size) : isList ? 10 : 1 };
    },
    // Limits are checked before execution, against the request's variables: see
    // src/infra/query-limits-plugin.ts.
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    edgesFieldOptions: { nullable: false },
    nodeFieldOptions: { nullable: false },
    encodeGlobalID: (typename, id) => Buffer.from(`${typename}:${id}`).toString('base64url'),
    decodeGlobalID: decodeGlobalId,
    // node/nodes are src/modules/node/node.schema.ts: one bad id there nulls one item, not the request.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.globalConnectionField('totalCount', (t) =>
  t.int({
    description: 'Number of items across all pages; computed only when requested.',
    resolve: (connection) => connection.totalCount(),
  }),
);

/** Postgres timestamps, serialized as RFC 3339 UTC with microseconds. */
builder.scalarType('DateTime', {
  description: 'An RFC 3339 timestamp in UTC, e.g. 2026-11-23T12:00:00.123456Z',
  serialize: (value) => toRfc3339(String(value)),
  parseValue: (value) => {
    if (typeof value !== 'string' || !isTimestamp(value)) {
      throw badInput('DateTime must be an RFC 3339 timestamp of a real date, years 0001–9999');
    }
    return value;
  },
});

builder.scalarType('JSON', {
  description: 'Arbitrary JSON produced by the server (pipeline step output, event payload).',
  serialize: (value) => value,
  parseValue: (value) => value,
});
