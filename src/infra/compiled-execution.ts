import { type DocumentNode, Kind } from 'graphql';

/** The name of a document's only operation (null when anonymous), or undefined when it has several. */
const soleOperation = new WeakMap<DocumentNode, string | null | undefined>();

function soleOperationName(document: DocumentNode): string | null | undefined {
  if (soleOperation.has(document)) return soleOperation.get(document);
  const operations = document.definitions.filter(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION,
  );
  const name = operations.length === 1 ? (operations[0]!.name?.value ?? null) : undefined;
  soleOperation.set(document, name);
  return name;
}

/**
 * Whether `@envelop/graphql-jit` may execute this request. The plugin compiles once per
 * document, for whichever operation the first request named, and serves that compile to every
 * later request of the document: with two operations in one document a request naming the
 * query ran the mutation. A document with exactly one operation, requested without a name or
 * by that operation's name, can only ever compile to that operation; everything else runs on
 * graphql-js, which selects the operation per request.
 */
export function compilesUnambiguously(
  document: DocumentNode,
  operationName: string | null | undefined,
): boolean {
  const sole = soleOperationName(document);
  if (sole === undefined) return false;
  return operationName == null || operationName === sole;
}
