import {
  BREAK,
  type DirectiveNode,
  type FieldNode,
  type GraphQLNamedType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
  getNamedType,
  isObjectType,
  type OperationDefinitionNode,
  visit,
} from 'graphql';
import { collectSubfields } from 'graphql/execution/collectFields.js';
import { type RawBuilder, sql } from 'kysely';
import { badInput } from '../errors.ts';
import type { Params } from './compiled-query.ts';
import { isFloat4, isInt4, isInt8Id, isTimestamp, textProblem } from './postgres-values.ts';

/** Relay arguments as graphql-js hands them over. */
export interface ConnectionArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

/** `real` is float4 (e.g. ts_rank): the cursor value is cast back to real so ties compare exactly. */
export type SortValueKind = 'timestamp' | 'text' | 'real' | 'integer';

/** A keyset order: one sort expression with the row id as tie-breaker, both in `direction`. */
export interface KeysetOrder {
  /** Stable name stored in cursors, so a cursor from one ordering is refused by another. */
  name: string;
  expression: RawBuilder<unknown>;
  kind: SortValueKind;
  direction: 'asc' | 'desc';
  idColumn: string;
}

export interface PageRequest {
  backward: boolean;
  size: number;
  cursor: { value: string | number; id: string } | null;
  /** True when the client passed a cursor on the side it came from. */
  hasCursor: boolean;
}

export interface PageSizeLimits {
  defaultSize: number;
  maxSize: number;
}

export const pageLimits = (config: { DEFAULT_PAGE_SIZE: number; MAX_PAGE_SIZE: number }) => ({
  defaultSize: config.DEFAULT_PAGE_SIZE,
  maxSize: config.MAX_PAGE_SIZE,
});

export interface Page<Row> {
  edges: { cursor: string; node: Row }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

const CURSOR_VERSION = 1;

export function encodeCursor(order: KeysetOrder, value: string | number, id: string): string {
  return Buffer.from(JSON.stringify([CURSOR_VERSION, order.name, value, id])).toString('base64url');
}

/** The cursor's parts when it has the shape encodeCursor gives it; null otherwise. */
function readCursor(cursor: string): { name: unknown; value: unknown; id: string } | null {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!Array.isArray(decoded) || decoded.length !== 4 || decoded[0] !== CURSOR_VERSION) return null;
  const [, name, value, id] = decoded as [number, unknown, unknown, unknown];
  if (typeof id !== 'string' || !isInt8Id(id)) return null;
  return { name, value, id };
}

/** Checked before a request runs (query limits): a forged cursor is refused before any SQL. */
export const isWellFormedCursor = (cursor: string): boolean => readCursor(cursor) !== null;

/** The cursor's sort value and id; BAD_USER_INPUT (naming `argument`) unless Postgres takes both. */
export function decodeCursor(
  order: KeysetOrder,
  cursor: string,
  argument: 'after' | 'before',
): { value: string | number; id: string } {
  const parts = readCursor(cursor);
  const invalid = () => badInput(`\`${argument}\` is not a valid cursor`, { argument });
  if (!parts) throw invalid();
  const { name, value, id } = parts;
  if (name !== order.name) {
    throw badInput(`\`${argument}\` is a cursor of a different ordering`, { argument });
  }
  if (!isValidSortValue(order.kind, value)) throw invalid();
  return { value, id };
}

/** A cursor's sort value that Postgres casts to the order's type without an error. */
function isValidSortValue(kind: SortValueKind, value: unknown): value is string | number {
  switch (kind) {
    case 'real':
      return typeof value === 'number' && isFloat4(value);
    case 'integer':
      return typeof value === 'number' && isInt4(value);
    case 'timestamp':
      return typeof value === 'string' && isTimestamp(value);
    case 'text':
      return typeof value === 'string' && value.length <= 1000 && textProblem(value) === null;
  }
}

/** Validates Relay arguments: one direction at a time, sizes within the documented cap. */
export function parsePageArgs(
  args: ConnectionArgs,
  order: KeysetOrder,
  limits: PageSizeLimits,
): PageRequest {
  const { first, last, after, before } = args;
  if (first != null && last != null) {
    throw badInput('Pass either `first` or `last`, not both', { argument: 'first' });
  }
  for (const [argument, size] of [
    ['first', first],
    ['last', last],
  ] as const) {
    if (size != null && (size < 0 || size > limits.maxSize)) {
      throw badInput(`\`${argument}\` must be between 0 and ${limits.maxSize}`, { argument });
    }
  }
  const backward = last != null || (first == null && before != null && after == null);
  if (backward && after != null) {
    throw badInput('`after` cannot be combined with `last`', { argument: 'after' });
  }
  if (!backward && before != null) {
    throw badInput('`before` cannot be combined with `first`', { argument: 'before' });
  }
  const rawCursor = backward ? before : after;
  return {
    backward,
    size: (backward ? last : first) ?? limits.defaultSize,
    cursor:
      rawCursor == null ? null : decodeCursor(order, rawCursor, backward ? 'before' : 'after'),
    hasCursor: rawCursor != null,
  };
}

/** SQL fragments for one page: the keyset condition (or `true`), the ORDER BY, the LIMIT. */
export function keysetClauses(order: KeysetOrder, page: PageRequest) {
  // Walking backward reads the mirror order and flips the rows afterward.
  const descending = (order.direction === 'desc') !== page.backward;
  const comparator = sql.raw(descending ? '<' : '>');
  const direction = sql.raw(descending ? 'desc' : 'asc');
  const id = sql.ref(order.idColumn);
  const condition = page.cursor
    ? sql<boolean>`(${order.expression}, ${id}) ${comparator} (${castValue(order.kind, page.cursor.value)}, ${page.cursor.id}::bigint)`
    : sql<boolean>`true`;
  return {
    condition,
    orderBy: sql`${order.expression} ${direction}, ${id} ${direction}`,
    limit: page.size + 1,
  };
}

/** What of a page request shapes its SQL (a part of a compiled variant's key). */
export interface PageShape {
  backward: boolean;
  cursor: boolean;
  /**
   * Rows to fetch: page size + 1 (the extra row tells whether there is more), at most
   * MAX_PAGE_SIZE + 1. Written into the SQL text, not bound: see keysetClausesOf.
   */
  limit: number;
}

export const pageShape = (page: PageRequest): PageShape => ({
  backward: page.backward,
  cursor: page.cursor !== null,
  limit: page.size + 1,
});

export const pageShapeKey = (shape: PageShape) =>
  `${shape.backward ? 'backward' : 'forward'}${shape.cursor ? ':cursor' : ''}:${shape.limit}`;

/** What of a page request a compiled query binds per call. */
export interface PageParams {
  cursorValue: string | number | null;
  cursorId: string | null;
}

export const pageParams = (page: PageRequest): PageParams => ({
  cursorValue: page.cursor?.value ?? null,
  cursorId: page.cursor?.id ?? null,
});

/**
 * keysetClauses for a query built once per page shape (src/db/compiled-query.ts): the cursor is
 * the parameters `p`, the limit a literal. A generic plan costs a bound `limit $n` at 10 % of the
 * rows, so Postgres never chose it and planned the statement again on every execution (the tag
 * page: 0.5 ms of planning for 0.14 ms of execution; bench/analysis.md).
 */
export function keysetClausesOf(order: KeysetOrder, shape: PageShape, p: Params<PageParams>) {
  const { condition, orderBy } = keysetClauses(order, {
    backward: shape.backward,
    size: 0,
    cursor: shape.cursor ? { value: p.cursorValue!, id: p.cursorId! } : null,
    hasCursor: shape.cursor,
  });
  return { condition, orderBy, limit: sql.lit(shape.limit) };
}

function castValue(kind: SortValueKind, value: string | number) {
  switch (kind) {
    case 'timestamp':
      return sql`${value}::timestamptz`;
    case 'real':
      return sql`${value}::real`;
    case 'integer':
      return sql`${value}::integer`;
    case 'text':
      return sql`${value}::text`;
  }
}

/** Turns page size + 1 rows (in query order) into a Relay page. */
export function toPage<Row>(
  rows: readonly Row[],
  page: PageRequest,
  order: KeysetOrder,
  keyOf: (row: Row) => { value: string | number; id: string },
): Page<Row> {
  const hasMore = rows.length > page.size;
  const kept = rows.slice(0, page.size);
  if (page.backward) kept.reverse();
  const edges = kept.map((node) => new Edge(node, order, keyOf));
  return {
    edges,
    pageInfo: {
      // Only the side we walked toward is known exactly; the other side is "there was a cursor".
      hasNextPage: page.backward ? page.hasCursor : hasMore,
      hasPreviousPage: page.backward ? hasMore : page.hasCursor,
      get startCursor() {
        return edges[0]?.cursor ?? null;
      },
      get endCursor() {
        return edges.at(-1)?.cursor ?? null;
      },
    },
  };
}

/** An edge whose cursor is encoded when read: most selections never ask for one. */
class Edge<Row> {
  constructor(
    readonly node: Row,
    private readonly order: KeysetOrder,
    private readonly keyOf: (row: Row) => { value: string | number; id: string },
  ) {}

  get cursor(): string {
    const key = this.keyOf(this.node);
    return encodeCursor(this.order, key.value, key.id);
  }
}

/**
 * One Relay page per parent from rows fetched for all parents at once; `totalCount` runs one
 * grouped count for every parent, and only when some page's totalCount is asked for.
 */
export function toParentPages<Row>(
  parentIds: readonly string[],
  rows: readonly Row[],
  parentOf: (row: Row) => string,
  page: PageRequest,
  order: KeysetOrder,
  keyOf: (row: Row) => { value: string | number; id: string },
  countByParent: () => Promise<Map<string, number>>,
): (Page<Row> & { totalCount: () => Promise<number> })[] {
  let counts: Promise<Map<string, number>> | undefined;
  const groups = new Map<string, Row[]>(parentIds.map((id) => [id, []]));
  for (const row of rows) groups.get(parentOf(row))?.push(row);
  return parentIds.map((parentId) => ({
    ...toPage(groups.get(parentId) ?? [], page, order, keyOf),
    totalCount: async () => {
      counts ??= countByParent();
      return (await counts).get(parentId) ?? 0;
    },
  }));
}

/** What a connection field's selection asks for, so a resolver fetches that and nothing more. */
export interface ConnectionSelection {
  /** `edges` or `pageInfo`: the page query must run. */
  page: boolean;
  /** `totalCount`: the count must run. */
  count: boolean;
  /** Names of the fields selected on `edges { node }` (through fragments and aliases). */
  nodeFields: ReadonlySet<string>;
}

/**
 * The selection of the connection field being resolved, collected with graphql-js's own
 * `collectSubfields` (fragments, aliases, `@skip`/`@include` with the request's variables).
 * Collected once per field of a parsed document (see `fieldsSelectedAt`).
 */
export function connectionSelection(info: GraphQLResolveInfo): ConnectionSelection {
  return connectionSelectionOf((path) => fieldsSelectedAt(info, path));
}

/**
 * Field names selected along a path below one field: `fieldsSelectedAt` for the field being
 * resolved, `fieldsSelectedBelow` for a field a look-ahead found further down.
 */
export type SelectedAt = (path: readonly string[]) => ReadonlySet<string>;

/** What a connection field's selection asks for, read through `selectedAt`. */
export function connectionSelectionOf(selectedAt: SelectedAt): ConnectionSelection {
  const connection = selectedAt([]);
  return {
    page: connection.has('edges') || connection.has('pageInfo'),
    count: connection.has('totalCount'),
    nodeFields: selectedAt(['edges', 'node']),
  };
}

/** What was collected below one field of a parsed document, by path. */
interface CollectedSelection {
  nodes: readonly FieldNode[];
  returnType: GraphQLOutputType;
  byPath: Map<string, ReadonlySet<string>>;
}

const collected = new WeakMap<FieldNode, CollectedSelection[]>();
const conditionalOperations = new WeakMap<OperationDefinitionNode, boolean>();

/**
 * Whether the operation (or a fragment it may spread) has `@skip`/`@include`: only then does a
 * selection depend on the request's variables rather than on the document alone.
 */
function hasConditions(info: GraphQLResolveInfo): boolean {
  let conditional = conditionalOperations.get(info.operation);
  if (conditional === undefined) {
    conditional = false;
    const found = {
      Directive(node: DirectiveNode) {
        if (node.name.value !== 'skip' && node.name.value !== 'include') return undefined;
        conditional = true;
        return BREAK;
      },
    };
    visit(info.operation, found);
    for (const fragment of Object.values(info.fragments)) {
      if (!conditional) visit(fragment, found);
    }
    conditionalOperations.set(info.operation, conditional);
  }
  return conditional;
}

/**
 * `compute(info)` once per parsed field node when the operation has no `@skip`/`@include`: the
 * same document then selects the same below the field on every request (see fieldsSelectedAt),
 * so what is derived from the selection alone is kept with the parsed document. `compute` must
 * not read variables or anything else of the request.
 */
export function perDocument<Value>(
  cache: WeakMap<FieldNode, Value>,
  info: GraphQLResolveInfo,
  compute: (info: GraphQLResolveInfo) => Value,
): Value {
  if (info.fieldNodes.length !== 1 || hasConditions(info)) return compute(info);
  const node = info.fieldNodes[0]!;
  let value = cache.get(node);
  if (value === undefined) {
    value = compute(info);
    cache.set(node, value);
  }
  return value;
}

/**
 * Field names selected on the object reached from the resolved field along `path` (field names,
 * not aliases: every alias of a field counts). A document without `@skip`/`@include` selects the
 * same below a field on every request, so the answer is kept with the parsed document (yoga's
 * parse cache hands the same nodes to every request of a document): a list of 20 posts or
 * comments collects once, not once per item and request.
 */
export function fieldsSelectedAt(
  info: GraphQLResolveInfo,
  path: readonly string[],
): ReadonlySet<string> {
  if (hasConditions(info)) return collectAt(info, path);
  const first = info.fieldNodes[0]!;
  let entries = collected.get(first);
  if (!entries) {
    entries = [];
    collected.set(first, entries);
  }
  let entry = entries.find(
    (candidate) =>
      candidate.returnType === info.returnType &&
      candidate.nodes.length === info.fieldNodes.length &&
      candidate.nodes.every((node, index) => node === info.fieldNodes[index]),
  );
  if (!entry) {
    entry = { nodes: [...info.fieldNodes], returnType: info.returnType, byPath: new Map() };
    entries.push(entry);
  }
  const key = path.join('.');
  let fields = entry.byPath.get(key);
  if (!fields) {
    fields = collectAt(info, path);
    entry.byPath.set(key, fields);
  }
  return fields;
}

function collectAt(info: GraphQLResolveInfo, path: readonly string[]): Set<string> {
  return fieldsSelectedBelow(info, getNamedType(info.returnType), info.fieldNodes, path);
}

/**
 * Field names selected along `path` below field nodes of `type` that are not the field being
 * resolved (a look-ahead's), collected as the executor will collect them when it gets there.
 */
export function fieldsSelectedBelow(
  info: GraphQLResolveInfo,
  from: GraphQLNamedType,
  fieldNodes: readonly FieldNode[],
  path: readonly string[],
): Set<string> {
  let type = from;
  let nodes = fieldNodes;
  for (const step of path) {
    const field = isObjectType(type) ? type.getFields()[step] : undefined;
    if (!field || !isObjectType(type)) return new Set();
    nodes = subfields(info, type, nodes).filter((node) => node.name.value === step);
    type = getNamedType(field.type);
  }
  if (!isObjectType(type)) return new Set();
  return new Set(subfields(info, type, nodes).map((node) => node.name.value));
}

const subfields = (
  info: GraphQLResolveInfo,
  type: GraphQLObjectType,
  nodes: readonly FieldNode[],
): FieldNode[] =>
  [
    ...collectSubfields(info.schema, info.fragments, info.variableValues, type, nodes).values(),
  ].flat();
