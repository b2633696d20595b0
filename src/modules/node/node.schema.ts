import { resolveNodes } from '@pothos/plugin-relay';
import { GraphQLError, type GraphQLResolveInfo, type GraphQLSchema, isObjectType } from 'graphql';
import { builder, decodeGlobalId } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { badInput } from '../../errors.ts';

const isNodeType = (schema: GraphQLSchema, typename: string) => {
  const type = schema.getType(typename);
  return isObjectType(type) && type.getInterfaces().some((node) => node.name === 'Node');
};

/** No `http.status`: the error nulls one field or item and the rest of the response stands. */
const invalidNodeId = (message: string, argument: string) => badInput(message, { argument });

/** The global id decoded, or the client error that says why it names no node. */
function readNodeId(schema: GraphQLSchema, raw: string, argument: string) {
  try {
    const decoded = decodeGlobalId(raw);
    if (isNodeType(schema, decoded.typename)) return decoded;
    return invalidNodeId(`Invalid ID: ${raw.slice(0, 64)} names no node type`, argument);
  } catch (error) {
    if (!(error instanceof GraphQLError)) throw error;
    return invalidNodeId(error.message, argument);
  }
}

/**
 * The nodes for raw global ids, in order: a node, null (not found or not visible), or the
 * BAD_USER_INPUT error of an id that cannot name a node (graphql-js reports an Error item as that
 * item's error). Ids are decoded here rather than as arguments, where one bad id would fail the
 * whole field (or, through the complexity check, the whole request).
 */
async function nodesFor(
  ctx: Context,
  info: GraphQLResolveInfo,
  ids: readonly (string | number)[],
  argumentOf: (index: number) => string,
): Promise<unknown[]> {
  const decoded = ids.map((id, index) => readNodeId(info.schema, String(id), argumentOf(index)));
  const found = await resolveNodes(
    builder,
    ctx,
    info,
    decoded.map((id) => (id instanceof GraphQLError ? null : id)),
  );
  return decoded.map((id, index) => (id instanceof GraphQLError ? id : found[index]));
}

/**
 * Answers `node(id:)` for one type in a statement that also fetches what the selection asks of
 * the node (see QUERY_FOLDING); null when the selection has nothing it folds. The answer must be
 * what the type's loader gives (its row, or null when not visible), branded with the type.
 */
export type NodeFold = (
  ctx: Context,
  info: GraphQLResolveInfo,
  id: string,
) => Promise<unknown> | null;

const nodeFolds = new Map<string, NodeFold>();

/** Registers the fold of `typename`'s `node(id:)`. */
export function foldNode(typename: string, fold: NodeFold): void {
  nodeFolds.set(typename, fold);
}

/** The folded answer for `node(id:)`, or null to resolve it through the type's loader. */
function foldedNode(
  ctx: Context,
  info: GraphQLResolveInfo,
  decoded: { typename: string; id: string },
): Promise<unknown> | null {
  if (nodeFolds.size === 0 || !ctx.config.LOADER_BATCHING || !ctx.config.QUERY_FOLDING) {
    return null;
  }
  return nodeFolds.get(decoded.typename)?.(ctx, info, decoded.id) ?? null;
}

builder.queryFields((t) => ({
  node: t.field({
    type: builder.nodeInterfaceRef(),
    nullable: true,
    description:
      'Any object by its global ID; null when it does not exist or the viewer may not see it. ' +
      'An ID that names no object type answers BAD_USER_INPUT for this field only.',
    args: { id: t.arg.id({ required: true, description: 'A global ID from any `id` field.' }) },
    // The id is decoded once, for the fold and the type's loader alike.
    resolve: async (_root, args, ctx, info) => {
      const decoded = readNodeId(info.schema, String(args.id), 'id');
      if (decoded instanceof GraphQLError) throw decoded;
      const folded = foldedNode(ctx, info, decoded);
      if (folded) return (await folded) as never;
      const [node] = await resolveNodes(builder, ctx, info, [decoded]);
      return node as never;
    },
  }),
  nodes: t.field({
    type: [builder.nodeInterfaceRef()],
    nullable: { list: false, items: true },
    description:
      'Objects by global ID, in order; an item is null when not found or not visible. An ID ' +
      'that names no object type nulls its item with BAD_USER_INPUT (argument `ids[i]`).',
    args: {
      ids: t.arg.idList({
        required: true,
        description: 'Global IDs from any `id` fields, of any mix of types.',
      }),
    },
    resolve: (_root, args, ctx, info) =>
      nodesFor(ctx, info, args.ids, (index) => `ids[${index}]`) as never,
  }),
}));
