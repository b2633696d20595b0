import DataLoader from 'dataloader';

/** DataLoader contract: one result per key, in key order (SQL `IN` returns storage order). */
export function inKeyOrder<Row>(
  keys: readonly string[],
  rows: readonly Row[],
  keyOf: (row: Row) => string,
): (Row | null)[] {
  const byKey = new Map(rows.map((row) => [keyOf(row), row]));
  return keys.map((key) => byKey.get(key) ?? null);
}

/** Groups child rows under each parent key, keeping query order; parents without rows get []. */
export function groupByKey<Row>(
  keys: readonly string[],
  rows: readonly Row[],
  keyOf: (row: Row) => string,
): Row[][] {
  const groups = new Map<string, Row[]>(keys.map((key) => [key, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return keys.map((key) => groups.get(key) ?? []);
}

const loadersByRequest = new WeakMap<object, Map<string, DataLoader<string, unknown>>>();

/**
 * The request's DataLoader for `key`, created with `load` on first use. Fields that resolve with
 * the same key share one batch wherever they sit in the document (aliases, sibling root fields),
 * so the statements a document costs follow its depth, not its breadth. The key must name
 * everything `load` depends on besides the ids (field, arguments, what the selection needs).
 */
export function requestLoader<Value>(
  request: object,
  key: string,
  load: (ids: string[]) => Promise<readonly Value[]>,
): DataLoader<string, Value> {
  let loaders = loadersByRequest.get(request);
  if (!loaders) {
    loaders = new Map();
    loadersByRequest.set(request, loaders);
  }
  let loader = loaders.get(key) as DataLoader<string, Value> | undefined;
  if (!loader) {
    loader = new DataLoader<string, Value>((ids) => load([...ids]));
    loaders.set(key, loader as DataLoader<string, unknown>);
  }
  return loader;
}
