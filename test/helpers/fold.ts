import { expect } from 'vitest';
import type { GraphQLResponse, TestApp } from './app.ts';

/**
 * One request with `x-quire-debug`: the answer without its debug extensions, errors in path
 * order (sibling fields fail concurrently, so their order varies), and the SQL statements it ran.
 */
export async function askCounted(
  app: TestApp,
  query: string,
  variables: Record<string, unknown>,
  token?: string,
): Promise<{ result: GraphQLResponse; statements: number }> {
  const result: GraphQLResponse = await app.gql(query, variables, { debug: true, token });
  const statements = result.extensions?.sql.queries as number;
  delete result.extensions;
  result.errors?.sort((a, b) => String(a.path).localeCompare(String(b.path)));
  return { result, statements };
}

/** The instances a fold is checked on: the unfolded reference, the folded one, cached ones. */
export interface FoldApps {
  /** QUERY_FOLDING=off: the row, then the page, as two statements. */
  unfolded: TestApp;
  folded: TestApp;
  /** Folded over caches, asked in this order (a miss, then hits, possibly on another instance). */
  cached: readonly TestApp[];
}

/**
 * Asks every instance the same request and expects each answer to be the unfolded one; returns
 * that answer and the statements of the folded and the unfolded instance.
 */
export async function compareFolded(
  apps: FoldApps,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<{ result: GraphQLResponse; folded: number; unfolded: number }> {
  const expected = await askCounted(apps.unfolded, query, variables, token);
  const one = await askCounted(apps.folded, query, variables, token);
  expect(one.result).toEqual(expected.result);
  for (const app of apps.cached) {
    expect((await askCounted(app, query, variables, token)).result).toEqual(expected.result);
  }
  return { result: one.result, folded: one.statements, unfolded: expected.statements };
}
