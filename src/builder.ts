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

/**
 * base64url of `Type:id`, as Buffer's 'base64url' gives it. Every node of a response carries one:
 * `btoa` (the text is ASCII, a type name and a decimal id) takes about half a Buffer's time. Type
 * names and digits never encode to `+` or `/`; other text is still translated.
 */
export function encodeGlobalId(typename: string, id: string): string {
  const base64 = btoa(`${typename}:${id}`);
  let end = base64.length;
  while (base64.charCodeAt(end - 1) === 61 /* = */) end--;
  const unpadded = end === base64.length ? base64 : base64.slice(0, end);
  return unpadded.includes('+') || unpadded.includes('/')
    ? unpadded.replaceAll('+', '-').replaceAll('/', '_')
    : unpadded;
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
    // lists are small (tags, steps) and count 10. Only `first`/`last` are read: the query limits
    // remember a passed document by those variables' values alone (src/plugins/query-limits.ts).
    fieldComplexity: (args, ctx, field) => {
      const page = args as { first?: number | null; last?: number | null };
      const isConnection = 'first' in page || 'last' in page;
      const size = page.first ?? page.last ?? ctx.config.DEFAULT_PAGE_SIZE;
      const isList = isListType(getNullableType(field.type)) && field.name !== 'edges';
      return { field: 1, multiplier: isConnection ? Math.max(1, size) : isList ? 10 : 1 };
    },
    // Limits are checked before execution, against the request's variables: see
    // src/plugins/query-limits.ts.
  },
  relay: {
    // Relay Modern, urql and Apollo match a response to its request without an echoed id.
    clientMutationId: 'omit',
    mutationInputArgOptions: {
      description:
        'Everything the mutation takes; its fields document their limits and error codes.',
    },
    cursorType: 'String',
    encodeGlobalID: (typename, id) => encodeGlobalId(typename, String(id)),
    decodeGlobalID: decodeGlobalId,
    // node/nodes are src/modules/node/node.schema.ts: one bad id there nulls one item, not the request.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    // Descriptions of what the plugin generates for every connection (GraphiQL shows them).
    nodeTypeOptions: {
      description: 'An object with a global ID, refetchable through `node(id:)` and `nodes(ids:)`.',
    },
    idFieldOptions: {
      description:
        'Opaque global ID (base64url of `Type:id`); pass it back to `node(id:)` or as an argument.',
    },
    pageInfoTypeOptions: { description: 'Where a connection page sits in the whole list.' },
    hasNextPageFieldOptions: { description: 'True when more items follow the last edge.' },
    hasPreviousPageFieldOptions: { description: 'True when items precede the first edge.' },
    startCursorFieldOptions: {
      description: 'Cursor of the first edge (pass as `before`); null for an empty page.',
    },
    endCursorFieldOptions: {
      description: 'Cursor of the last edge (pass as `after`); null for an empty page.',
    },
    defaultConnectionTypeOptions: {
      description:
        'One page of a list (Relay cursor connection), in the order its field documents.',
    },
    defaultEdgeTypeOptions: { description: 'One item of a connection page and its cursor.' },
    edgesFieldOptions: { nullable: false, description: 'The items of this page, in list order.' },
    pageInfoFieldOptions: { description: 'Cursors and whether more pages exist either way.' },
    nodeFieldOptions: { nullable: false, description: 'The item.' },
    cursorFieldOptions: {
      description:
        'Opaque cursor of this item for `after`/`before`; valid only for the same field and order.',
    },
    firstArgOptions: {
      description:
        'Page size from the start (default 20, at most MAX_PAGE_SIZE, 100 unless configured); BAD_USER_INPUT when negative, above the cap or combined with `last`.',
    },
    lastArgOptions: {
      description:
        'Page size from the end (same limits as `first`); BAD_USER_INPUT when combined with `first` or `after`.',
    },
    afterArgOptions: {
      description:
        'Return items after this cursor (an `endCursor` of the same field and order); BAD_USER_INPUT when malformed or from another order.',
    },
    beforeArgOptions: {
      description:
        'Return items before this cursor (a `startCursor` of the same field and order); BAD_USER_INPUT when malformed or from another order.',
    },
  },
});

builder.queryType({
  description:
    'Reads. Anonymous callers see published posts and public profiles; a bearer token adds what its role may see.',
});
builder.mutationType({
  description:
    'Writes, each in one transaction and rate-limited per caller (each executed field counts). ' +
    'Every mutation takes one `input` object (`<Name>Input`) and returns a `<Name>Payload` ' +
    'object (Relay mutation convention, without `clientMutationId`). Expected failures are ' +
    'GraphQL errors with `extensions.code`, not payload fields: `data` is null and the error ' +
    'says why (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, NOT_FOUND, CONFLICT, RATE_LIMITED).',
});
builder.subscriptionType({
  description: 'Live updates over SSE (`Accept: text/event-stream`) or graphql-ws.',
});

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
