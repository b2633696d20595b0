import {
  BREAK,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  getNamedType,
  isInputObjectType,
  Kind,
  type TypeNode,
  typeFromAST,
  visit,
} from 'graphql';

interface DocumentShape {
  /** The only operation's name (null when anonymous); undefined when there are several. */
  soleOperation: string | null | undefined;
  /** The document uses something graphql-jit is known to execute differently from graphql-js. */
  divergent: boolean;
}

const shapes = new WeakMap<DocumentNode, DocumentShape>();

/** Whether a value of `type` may leave out an input field that has a default, at any depth. */
function omitsDefaultedField(type: GraphQLInputType, seen = new Set<GraphQLInputType>()): boolean {
  const named = getNamedType(type);
  if (!isInputObjectType(named) || seen.has(named)) return false;
  seen.add(named);
  return Object.values(named.getFields()).some(
    (field) => field.defaultValue !== undefined || omitsDefaultedField(field.type, seen),
  );
}

function variableOmitsDefaultedField(schema: GraphQLSchema, typeNode: TypeNode): boolean {
  const type = typeFromAST(schema, typeNode);
  return type !== undefined && omitsDefaultedField(type as GraphQLInputType);
}

function shapeOf(schema: GraphQLSchema, document: DocumentNode): DocumentShape {
  let shape = shapes.get(document);
  if (shape) return shape;
  const operations = document.definitions.filter(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION,
  );
  let divergent = false;
  visit(document, {
    // graphql-jit 0.8 refuses an omitted non-null variable that has a default value, and an
    // input object variable that leaves out a field with a default (`PostOrder.direction`), and
    // skips every spread of a fragment whose first spread is `@skip`ped: graphql-js gets them right.
    VariableDefinition(node) {
      if (node.defaultValue || variableOmitsDefaultedField(schema, node.type)) divergent = true;
      return divergent ? BREAK : undefined;
    },
    Directive(node) {
      if (node.name.value === 'skip' || node.name.value === 'include') divergent = true;
      return divergent ? BREAK : undefined;
    },
  });
  shape = {
    soleOperation: operations.length === 1 ? (operations[0]!.name?.value ?? null) : undefined,
    divergent,
  };
  shapes.set(document, shape);
  return shape;
}

/**
 * Whether `@envelop/graphql-jit` may execute this request. The plugin compiles once per
 * document, for whichever operation the first request named, and serves that compile to every
 * later request of the document: with two operations in one document a request naming the
 * query ran the mutation. A document with exactly one operation, requested without a name or
 * by that operation's name, can only ever compile to that operation. Documents with variable
 * defaults, variables of input types with field defaults, or `@skip`/`@include` also run on
 * graphql-js, where graphql-jit's results differ.
 * Everything else (the everyday single-operation request) keeps the compiled speed.
 */
export function compilesUnambiguously(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): boolean {
  const { soleOperation, divergent } = shapeOf(schema, document);
  if (soleOperation === undefined || divergent) return false;
  return operationName == null || operationName === soleOperation;
}
