import {
  type Compilable,
  createQueryId,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type RootOperationNode,
  sql,
} from 'kysely';
import type { Db } from './database.ts';
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
 * Arrays go in as one parameter (`= any(${p.ids}::bigint[])`), so the text is the same whatever
 * their length.
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

function compile(query: Compilable<unknown>): Compiled {
  const { sql, query: node, parameters } = query.compile();
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

/** `= any(…)` over ids as one bigint[] parameter: one text whatever the number of ids. */
export const anyId = (ids: readonly string[]) => sql<string>`any(${ids}::bigint[])`;

/** The rows a query built with Kysely returns. */
type RowOf<Q> = Q extends Compilable<infer Row> ? Row : never;

/**
 * A fixed-shape query built and compiled once (on first use), then run with only its parameters
 * bound: no Kysely building or compiling per call, and one SQL text, so one prepared statement
 * per connection (src/db/prepared-statements.ts). `build` receives a query builder and the
 * parameters as placeholders; the rows keep the type Kysely gives the built query.
 */
export function compiledQuery<P extends object, Q extends Compilable<unknown>>(
  build: (db: Db, p: Params<P>) => Q,
): (db: Db, values: P) => Promise<RowOf<Q>[]> {
  let compiled: Compiled | undefined;
  return (db, values) => {
    compiled ??= compile(build(builder, params<P>()));
    return execute(db, compiled, values);
  };
}

/**
 * A query whose shape depends on a few choices (who is asking, which filters, paging direction):
 * each variant is built and compiled once, cached under `keyOf(variant)`, which must name
 * everything `build` reads from the variant. The variants must be a small finite set; values
 * that vary freely (ids, names, cursors, sizes) belong in the parameters. A variant keyed `null`
 * is built per call with its values inline as parameters (e.g. full-text search, which is never
 * prepared).
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
    if (!compiled) {
      compiled = compile(build(builder, variant, params<P>()));
      variants.set(key, compiled);
    }
    return execute(db, compiled, values);
  };
}
