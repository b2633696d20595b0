import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
  getArgumentValues,
  getNullableType,
  isInputObjectType,
  isListType,
  Kind,
  type OperationDefinitionNode,
  TypeInfo,
  type ValueNode,
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

/** A refused value: why, and where below the value checked (`.posts[2].title`, or '' itself). */
interface ValueProblem {
  problem: string;
  path: string;
}

/**
 * The first value under this one that Postgres would refuse (or a global id that names nothing).
 * The path is built only for that value: importPosts walks 5,000 input objects and their tags,
 * and a path string for each of them cost more than the checks.
 */
function valueProblem(
  type: GraphQLInputType,
  value: unknown,
  rule: StringRule,
): ValueProblem | undefined {
  if (value == null) return undefined;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    for (let index = 0; index < items.length; index++) {
      const found = valueProblem(nullable.ofType, items[index], rule);
      if (found) return { problem: found.problem, path: `[${index}]${found.path}` };
    }
    return undefined;
  }
  if (isInputObjectType(nullable)) {
    for (const field of Object.values(nullable.getFields())) {
      const found = valueProblem(
        field.type,
        (value as Record<string, unknown>)[field.name],
        globalIdRule(field.extensions),
      );
      if (found) return { problem: found.problem, path: `.${field.name}${found.path}` };
    }
    return undefined;
  }
  if (typeof value !== 'string') return undefined;
  const problem = stringProblem(value, rule);
  return problem ? { problem, path: '' } : undefined;
}

/** The first value of the argument `name` that Postgres would refuse, as BAD_USER_INPUT. */
function valueError(
  type: GraphQLInputType,
  value: unknown,
  name: string,
  rule: StringRule,
): GraphQLError | undefined {
  const found = valueProblem(type, value, rule);
  if (!found) return undefined;
  const path = `${name}${found.path}`;
  return badInput(`\`${path}\` ${found.problem}`, { argument: path });
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

/** A selected field that takes arguments, as it appears in the document. */
interface ArgumentSite {
  field: GraphQLField<unknown, unknown>;
  node: FieldNode;
}

/** Whether a value (an argument's, or a part of one) reads a variable. */
function readsVariable(value: ValueNode): boolean {
  if (value.kind === Kind.VARIABLE) return true;
  if (value.kind === Kind.LIST) return value.values.some(readsVariable);
  if (value.kind === Kind.OBJECT) return value.fields.some((field) => readsVariable(field.value));
  return false;
}

/** The first argument value at `site` that Postgres would refuse, with these variables. */
function siteError(
  { field, node }: ArgumentSite,
  variables: Record<string, unknown>,
): GraphQLError | undefined {
  let values: Record<string, unknown>;
  try {
    values = getArgumentValues(field, node, variables);
  } catch {
    // Not coercible: graphql-js reports it when the field executes.
    return undefined;
  }
  const paged = field.args.some((arg) => arg.name === 'first' || arg.name === 'last');
  for (const argument of field.args) {
    const isCursor = paged && (argument.name === 'after' || argument.name === 'before');
    const error = valueError(
      argument.type,
      values[argument.name],
      argument.name,
      isCursor ? 'cursor' : globalIdRule(argument.extensions),
    );
    if (error) return error;
  }
  return undefined;
}

/**
 * What a request of one operation has to check: every field with arguments it selects (its own
 * and through every fragment it spreads) in document order, and the sites to check per request:
 * those whose arguments read a variable, or all of them when an argument without variables
 * already holds a refused value (the error that comes first in document order is reported).
 */
interface ArgumentPlan {
  perRequest: readonly ArgumentSite[];
}

function argumentPlan(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
): ArgumentPlan {
  const typeInfo = new TypeInfo(schema);
  const all: ArgumentSite[] = [];
  const withVariables: ArgumentSite[] = [];
  let literalError = false;
  for (const definition of [operation, ...fragmentsOf(document, operation)]) {
    visit(
      definition,
      visitWithTypeInfo(typeInfo, {
        Field(node) {
          const field = typeInfo.getFieldDef();
          if (!field || field.args.length === 0) return;
          const site = { field, node };
          all.push(site);
          if (node.arguments?.some((argument) => readsVariable(argument.value))) {
            withVariables.push(site);
          } else if (!literalError && siteError(site, {})) literalError = true;
        },
      }),
    );
  }
  return { perRequest: literalError ? all : withVariables };
}

/**
 * The first argument value of the operation that runs (its fields, through every fragment it
 * spreads) that Postgres would refuse: NUL or an unpaired surrogate in any string, a string
 * longer than any column, a global id that does not decode to an int8 id of its field's type, a
 * page cursor without our cursor's shape (its values are checked against the ordering later, in
 * src/db/keyset.ts).
 * Errors name the argument or input field path (`input.title`, `ids[2]`).
 * `plans` keeps what each operation needs checked (documents come from yoga's parse cache), so a
 * request with new variables checks the arguments that read them without walking the document.
 */
export function argumentValuesError(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: GraphQLParams,
  plans = new WeakMap<OperationDefinitionNode, ArgumentPlan>(),
): GraphQLError | undefined {
  // Variables that do not coerce are reported by yoga (and the query limits) as they are.
  const requested = requestedOperation(schema, document, request.operationName, request.variables);
  if (!requested) return undefined;
  const { operation, variables } = requested;
  let plan = plans.get(operation);
  if (!plan) {
    plan = argumentPlan(schema, document, operation);
    plans.set(operation, plan);
  }
  for (const site of plan.perRequest) {
    const error = siteError(site, variables);
    if (error) return error;
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
  const plans = new WeakMap<OperationDefinitionNode, ArgumentPlan>();
  return {
    onValidate({ params, context }) {
      const request = (context as { params?: GraphQLParams }).params;
      if (!request) throw new Error('useArgumentValues needs the request params in the context');
      return ({ valid }) => {
        if (!valid) return;
        const error = argumentValuesError(params.schema, params.documentAST, request, plans);
        if (error) throw error;
      };
    },
  };
}
