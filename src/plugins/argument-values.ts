import {
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  type GraphQLInputType,
  type GraphQLSchema,
  getArgumentValues,
  getNullableType,
  isInputObjectType,
  isListType,
  Kind,
  type OperationDefinitionNode,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import { decodeGlobalId } from '../builder.ts';
import { isWellFormedCursor } from '../db/keyset.ts';
import { textProblem } from '../db/postgres-values.ts';
import { badInput } from '../errors.ts';
import { requestedOperation } from './executed-fields.ts';

/**
 * The longest text any column takes (posts.body, 200,000 characters). Each service checks its
 * own column's limit; this bounds what reaches lookups and search that have none.
 */
export const MAX_STRING_LENGTH = 200_000;
/** Variable sets remembered per document as passing (then forgotten all at once). */
const PASSED_VARIABLE_SETS = 256;
/** Longer variable sets are checked every time rather than held in memory. */
const REMEMBERED_KEY_LENGTH = 4096;

/** What plugin-relay's `t.arg.globalID({ for })` records on an argument or input field. */
interface GlobalIdExtensions {
  isRelayGlobalID?: boolean;
  relayGlobalIDFor?: readonly { typename: string }[] | null;
}

type GlobalIdRule = false | true | readonly string[];
/** How a string argument is read past its type: a global id (of some types), a page cursor. */
type StringRule = GlobalIdRule | 'cursor';

function globalIdRule(extensions: Readonly<Record<string, unknown>> | undefined): GlobalIdRule {
  const relay = extensions as GlobalIdExtensions | undefined;
  if (!relay?.isRelayGlobalID) return false;
  return relay.relayGlobalIDFor?.map((entry) => entry.typename) ?? true;
}

/** The problem with a global id for `rule`, or null: decodable, an int8 id, of an allowed type. */
function globalIdProblem(raw: string, rule: GlobalIdRule): string | null {
  let typename: string;
  try {
    typename = decodeGlobalId(raw).typename;
  } catch {
    return 'is not a valid ID';
  }
  if (Array.isArray(rule) && !rule.includes(typename))
    return `is not the ID of a ${rule.join(' or ')}`;
  return null;
}

/** Why Postgres (or the id decoder, or the cursor reader) would refuse this string; null if none. */
function stringProblem(value: string, rule: StringRule): string | null {
  if (value.length > MAX_STRING_LENGTH) return `is longer than ${MAX_STRING_LENGTH} characters`;
  const text = textProblem(value);
  if (text) return text;
  if (rule === 'cursor') return isWellFormedCursor(value) ? null : 'is not a valid cursor';
  return rule ? globalIdProblem(value, rule) : null;
}

/** The first value under `path` that Postgres would refuse (or a global id that names nothing). */
function valueError(
  type: GraphQLInputType,
  value: unknown,
  path: string,
  rule: StringRule,
): GraphQLError | undefined {
  if (value == null) return undefined;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    for (const [index, item] of items.entries()) {
      const error = valueError(nullable.ofType, item, `${path}[${index}]`, rule);
      if (error) return error;
    }
    return undefined;
  }
  if (isInputObjectType(nullable)) {
    for (const field of Object.values(nullable.getFields())) {
      const error = valueError(
        field.type,
        (value as Record<string, unknown>)[field.name],
        `${path}.${field.name}`,
        globalIdRule(field.extensions),
      );
      if (error) return error;
    }
    return undefined;
  }
  if (typeof value !== 'string') return undefined;
  const problem = stringProblem(value, rule);
  return problem ? badInput(`\`${path}\` ${problem}`, { argument: path }) : undefined;
}

/** The fragments `operation` reaches, directly or through other fragments. */
function fragmentsOf(document: DocumentNode, operation: OperationDefinitionNode) {
  const byName = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) byName.set(definition.name.value, definition);
  }
  const reached = new Set<FragmentDefinitionNode>();
  const pending: { selectionSet: OperationDefinitionNode['selectionSet'] }[] = [operation];
  while (pending.length > 0) {
    visit(pending.pop()!.selectionSet, {
      FragmentSpread(spread) {
        const fragment = byName.get(spread.name.value);
        if (!fragment || reached.has(fragment)) return;
        reached.add(fragment);
        pending.push(fragment);
      },
    });
  }
  return [...reached];
}

/**
 * The first argument value of the operation that runs (its fields, through every fragment it
 * spreads) that Postgres would refuse: NUL or an unpaired surrogate in any string, a string
 * longer than any column, a global id that does not decode to an int8 id of its field's type, a
 * page cursor without our cursor's shape (its values are checked against the ordering later, in
 * src/db/keyset.ts).
 * Errors name the argument or input field path (`input.title`, `ids[2]`).
 */
export function argumentValuesError(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: GraphQLParams,
): GraphQLError | undefined {
  // Variables that do not coerce are reported by yoga (and the query limits) as they are.
  const requested = requestedOperation(schema, document, request.operationName, request.variables);
  if (!requested) return undefined;
  const { operation, variables } = requested;
  const typeInfo = new TypeInfo(schema);
  let found: GraphQLError | undefined;
  for (const definition of [operation, ...fragmentsOf(document, operation)]) {
    visit(
      definition,
      visitWithTypeInfo(typeInfo, {
        Field(node) {
          const field = typeInfo.getFieldDef();
          if (found || !field || field.args.length === 0) return;
          let values: Record<string, unknown>;
          try {
            values = getArgumentValues(field, node, variables);
          } catch {
            // Not coercible: graphql-js reports it when the field executes.
            return;
          }
          const paged = field.args.some((arg) => arg.name === 'first' || arg.name === 'last');
          for (const argument of field.args) {
            const isCursor = paged && (argument.name === 'after' || argument.name === 'before');
            found = valueError(
              argument.type,
              values[argument.name],
              argument.name,
              isCursor ? 'cursor' : globalIdRule(argument.extensions),
            );
            if (found) return;
          }
        },
      }),
    );
    if (found) return found;
  }
  return undefined;
}

/**
 * Checks every argument value of the operation before any resolver runs, over HTTP, SSE and
 * graphql-ws alike (src/http.ts validates through the enveloped `validate`, with the params in
 * the context): BAD_USER_INPUT naming the argument instead of a Postgres error. Registered before
 * the query limits, whose cost pass decodes global ids and would report them without the
 * argument's name.
 */
export function useArgumentValues(): Plugin {
  // Documents come from yoga's parse cache: remember which variable sets passed.
  const passed = new WeakMap<DocumentNode, Set<string>>();
  return {
    onValidate({ params, context }) {
      const request = (context as { params?: GraphQLParams }).params;
      if (!request) throw new Error('useArgumentValues needs the request params in the context');
      return ({ valid }) => {
        if (!valid) return;
        const key = `${request.operationName ?? ''}\n${JSON.stringify(request.variables ?? {})}`;
        const seen = passed.get(params.documentAST) ?? new Set<string>();
        if (seen.has(key)) return;
        const error = argumentValuesError(params.schema, params.documentAST, request);
        if (error) throw error;
        if (key.length > REMEMBERED_KEY_LENGTH) return;
        passed.set(params.documentAST, seen);
        if (seen.size >= PASSED_VARIABLE_SETS) seen.clear();
        seen.add(key);
      };
    },
  };
}
