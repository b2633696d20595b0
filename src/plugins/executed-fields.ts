import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLObjectType,
  type GraphQLSchema,
  getNamedType,
  getOperationAST,
  getVariableValues,
  isAbstractType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
} from 'graphql';
import { collectFields, collectSubfields } from 'graphql/execution/collectFields.js';

type RequestedOperation = {
  operation: OperationDefinitionNode;
  variables: Record<string, unknown>;
};

/** One coercion per request's variables object: what it was coerced for, and the result. */
interface Coerced {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName: string | null | undefined;
  requested: RequestedOperation | undefined;
}
const coercions = new WeakMap<object, Coerced>();

/**
 * The operation a request selects and its variables coerced as graphql-js will coerce them, or
 * undefined when no operation is selected or a variable does not coerce (graphql-js reports both
 * itself): what every guard that evaluates a selection with its variables starts from.
 * The argument checks, the query limits and the mutation rate limit each ask for it: the result
 * is kept per request's variables object (for the same schema, document and operation name), so
 * the variables are coerced once per request, not once per guard (importPosts: 5,000 input
 * objects, ≈ 25 ms each time). The coerced values are shared: read them, never change them.
 */
export function requestedOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variableValues: Record<string, unknown> | null | undefined,
): RequestedOperation | undefined {
  const key = variableValues ?? undefined;
  const kept = key && coercions.get(key);
  if (
    kept &&
    kept.schema === schema &&
    kept.document === document &&
    kept.operationName === operationName
  ) {
    return kept.requested;
  }
  const requested = coerce(schema, document, operationName, variableValues);
  if (key) coercions.set(key, { schema, document, operationName, requested });
  return requested;
}

function coerce(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variableValues: Record<string, unknown> | null | undefined,
): RequestedOperation | undefined {
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined;
  const coerced = getVariableValues(
    schema,
    operation.variableDefinitions ?? [],
    variableValues ?? {},
    { maxErrors: 1 },
  );
  return coerced.errors ? undefined : { operation, variables: coerced.coerced };
}

/** What an operation executes, counted per object as graphql-js collects it. */
export interface ExecutedFields {
  /** Field executions per object of each type reached (an abstract type counts its widest member). */
  fields: number;
  /** Of those, the ones whose response key is an alias. */
  aliases: number;
}

/**
 * The fields an operation will execute, collected by graphql-js's own `collectFields`, so
 * fragments and inline fragments count each time they are spread and `@skip`/`@include` are
 * applied with the request's coerced variables: the same selection graphql-js executes,
 * introspection (`__schema`, `__type`) included. Lists count once (their items are the same
 * selection); page sizes are the cost limit's business. The walk stops once it has visited
 * `4 × stopAfter` fields (every member of an abstract type counts toward that) and then reports
 * `fields: Infinity`, so its own cost stays bounded whatever the document multiplies.
 */
export function countExecutedFields(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
  stopAfter: number,
): ExecutedFields {
  const rootType = schema.getRootType(operation.operation);
  if (!rootType) return { fields: 0, aliases: 0 };
  const fragments = fragmentsOf(document);
  let visited = 0;
  const fieldOf = (type: GraphQLObjectType, name: string) => {
    if (type === schema.getQueryType()) {
      if (name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
      if (name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
    }
    return type.getFields()[name];
  };
  const walk = (
    type: GraphQLObjectType,
    fieldsByKey: Map<string, readonly FieldNode[]>,
  ): ExecutedFields => {
    const counted: ExecutedFields = { fields: 0, aliases: 0 };
    for (const [responseKey, nodes] of fieldsByKey) {
      const first = nodes[0]!;
      visited += 1;
      if (visited > 4 * stopAfter) return { fields: Number.POSITIVE_INFINITY, aliases: 0 };
      counted.fields += 1;
      if (responseKey !== first.name.value) counted.aliases += 1;
      const field = fieldOf(type, first.name.value);
      if (!field || !first.selectionSet) continue;
      const named = getNamedType(field.type);
      const runtimeTypes = isAbstractType(named)
        ? schema.getPossibleTypes(named)
        : isObjectType(named)
          ? [named]
          : [];
      let widest: ExecutedFields = { fields: 0, aliases: 0 };
      for (const runtimeType of runtimeTypes) {
        const sub = walk(
          runtimeType,
          collectSubfields(schema, fragments, variables, runtimeType, nodes),
        );
        if (sub.fields === Number.POSITIVE_INFINITY) return sub;
        if (sub.fields + sub.aliases > widest.fields + widest.aliases) widest = sub;
      }
      counted.fields += widest.fields;
      counted.aliases += widest.aliases;
    }
    return counted;
  };
  return walk(
    rootType,
    collectFields(schema, fragments, variables, rootType, operation.selectionSet),
  );
}

/** The root fields an operation executes, by response key (e.g. the mutations a request runs). */
export function executedRootFields(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): string[] {
  const rootType = schema.getRootType(operation.operation);
  if (!rootType) return [];
  return [
    ...collectFields(
      schema,
      fragmentsOf(document),
      variables,
      rootType,
      operation.selectionSet,
    ).keys(),
  ];
}

const fragmentIndex = new WeakMap<DocumentNode, Record<string, FragmentDefinitionNode>>();

function fragmentsOf(document: DocumentNode): Record<string, FragmentDefinitionNode> {
  let fragments = fragmentIndex.get(document);
  if (!fragments) {
    fragments = Object.create(null) as Record<string, FragmentDefinitionNode>;
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION)
        fragments[definition.name.value] = definition;
    }
    fragmentIndex.set(document, fragments);
  }
  return fragments;
}
