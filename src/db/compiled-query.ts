import {
  type Compilable,
  createQueryId,
  DummyDriver,
  Kysely,
  OperationNodeTransformer,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type RootOperationNode,
  sql,
  ValueNode,
} from 'kysely';
import { type Db, runCompiledDirect } from './database.ts';
import type { Database } from './tables.ts';

/**
 * Builds queries that are compiled once and never run through it (Kysely's "splitting query
 * building and execution"): the same Postgres compiler as the pool's, no connection.
 */
const builder: Db = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Stands in for a parameter while a query is built; compiled, it is one `$n` placeholder. */
class Slot {
  constructor(readonly name: string) {}
}

/**
 * The parameters of a query compiled once, as the build function sees them: each one, typed as
 * its value, is a placeholder bound per call. Use them where Kysely takes a value (`where`,
 * `limit`, `sql` template values); never compute with them (`p.size + 1` is not a parameter).
 * Arrays go in as one parameter (see `idIn`), so the text is the same whatever their length.
 */
export type Params<P> = P;

const params = <P>() =>
  new Proxy({}, { get: (_target, name) => new Slot(String(name)) }) as Params<P>;

interface Compiled {
  sql: string;
  query: RootOperationNode;
  /** Per `$n`: the parameter's name, or undefined for a value fixed when it was built. */
  names: (string | undefined)[];
  fixed: unknown[];
}

/**
 * Writes a variant's fixed strings and booleans into its text (Kysely's immediate values, quoted
 * and escaped by its compiler), so Postgres plans for them: the anonymous viewer's
 * `status = 'PUBLISHED'` bound as `$n` made the generic plan guess a third of the rows, lose to
 * a custom plan and be planned again on every execution. Only values fixed when the variant was
 * built (its key names them) are written in; every Slot stays a parameter. Numbers stay bound: a
 * literal such as 1.5 is `numeric`, which would turn a `real` comparison into a numeric one.
 */
class FixedValuesWrittenIn extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    return typeof node.value === 'string' || typeof node.value === 'boolean'
      ? ValueNode.createImmediate(node.value)
      : node;
  }
}

function compile(query: Compilable<unknown>): Compiled {
  const written = new FixedValuesWrittenIn().transformNode(query.compile().query);
  const {
    sql,
    query: node,
    parameters,
  } = builder.getExecutor().compileQuery(written, createQueryId());
  return {
    sql,
    query: node,
    names: parameters.map((value) => (value instanceof Slot ? value.name : undefined)),
    fixed: parameters.map((value) => (value instanceof Slot ? undefined : value)),
  };
}

async function execute<Row>(db: Db, compiled: Compiled, values: object): Promise<Row[]> {
  const parameters = compiled.names.map((name, index) =>
    name === undefined ? compiled.fixed[index] : (values as Record<string, unknown>)[name],
  );
  const direct = await runCompiledDirect<Row>(db, {
    node: compiled.query,
    sql: compiled.sql,
    parameters,
  });
  if (direct) return direct;
  // A transaction's Db: its statements run on its own connection, through Kysely.
  const executor = db.getExecutor();
  const queryId = createQueryId();
  // What Kysely does before compiling: the plugins see the node (the request's statement
  // counter records it). Quire's plugins never rewrite a node, so the fixed text stays right.
  executor.transformQuery(compiled.query, queryId);
  const result = await executor.executeQuery<Row>({
    query: compiled.query,
    queryId,
    sql: compiled.sql,
    parameters,
  });
  return result.rows as Row[];
}

/** Whether a batch holds one id or more: each has its own text (see `idIn`). */
export type Batch = 'one' | 'many';

export const batchOf = (ids: readonly unknown[]): Batch => (ids.length === 1 ? 'one' : 'many');

/**
 * The right side of `id = …` for a batch of ids, given as one bigint[] parameter: `any($n)` for
 * many, `($n)[1]` for one. Postgres keeps a generic plan of the latter (one row by a unique key)
 * but plans `any($n)` afresh on every execution: its generic plan is costed for an array of
 * unknown length and loses to a custom plan for the actual ids (~0.15 ms of Postgres CPU each).
 * The text stays the same whatever the number of ids, so one prepared statement per variant.
 */
export const idIn = (ids: readonly string[], batch: Batch) =>
  batch === 'one' ? sql<string>`(${ids}::bigint[])[1]` : sql<string>`any(${ids}::bigint[])`;

/** The rows a query built with Kysely returns. */
type RowOf<Q> = Q extends Compilable<infer Row> ? Row : never;

/**
 * Compiled variants kept per statement family; the least recently used is dropped (and built again
 * if used), so variants in steady use survive a churn of rare ones.
 */
const MAX_VARIANTS = 1000;

let compilations = 0;

/**
 * How many variants this process has built and compiled, over every statement family: a variant
 * still kept is not compiled again. For tests and diagnostics.
 */
export const variantsCompiled = (): number => compilations;

/**
 * A query whose shape depends on a few choices (who is asking, which filters, paging direction,
 * page size): each variant is built and compiled once, cached under `keyOf(variant)`, which must
 * name everything `build` reads from the variant. The variants must be a finite set (at most
 * MAX_VARIANTS are kept, the least recently used dropped); values that vary freely (ids, names,
 * cursors) belong in the parameters.
 * The page size is part of the variant rather than a parameter so that Postgres keeps the plan
 * (see keysetClausesOf). A variant keyed `null` is built per call with its values inline as
 * parameters (e.g. full-text search, which is never prepared).
 */
export function compiledVariants<V, P extends object, Q extends Compilable<unknown>>(
  keyOf: (variant: V) => string | null,
  build: (db: Db, variant: V, p: Params<P>) => Q,
): (db: Db, variant: V, values: P) => Promise<RowOf<Q>[]> {
  const variants = new Map<string, Compiled>();
  return async (db, variant, values) => {
    const key = keyOf(variant);
    if (key === null) {
      return (await db.executeQuery(build(db, variant, values))).rows as RowOf<Q>[];
    }
    let compiled = variants.get(key);
    if (compiled) {
      // Map keeps insertion order: moving a hit to the end makes the first key the least recent.
      variants.delete(key);
    } else {
      compiled = compile(build(builder, variant, params<P>()));
      compilations++;
      if (variants.size >= MAX_VARIANTS) variants.delete(variants.keys().next().value!);
    }
    variants.set(key, compiled);
    return execute(db, compiled, values);
  };
}

/**
 * A query over a batch of ids, built and compiled once per `Batch` (one id or many; see `idIn`),
 * then run with only its parameters bound: no Kysely building or compiling per call, and one SQL
 * text per variant, so one prepared statement per connection (src/db/prepared-statements.ts).
 */
export function compiledBatch<P extends object, Q extends Compilable<unknown>>(
  build: (db: Db, batch: Batch, p: Params<P>) => Q,
): (db: Db, batch: Batch, values: P) => Promise<RowOf<Q>[]> {
  return compiledVariants((batch: Batch) => batch, build);
}
