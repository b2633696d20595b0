import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser } from '../helpers/factories.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';

let app: TestApp;
let server: ServerProcess;

const nested = `query Nested { posts(first: 10) { edges { node { title author { name } tags { name }
  comments(first: 5) { edges { node { body author { name } } } } } } } }`;

async function post(query: string) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  expect(response.status).toBe(200);
  return response.json();
}

/** The server's JSON log lines that warn of a possible N+1. */
const warnings = () =>
  server
    .output()
    .split('\n')
    .filter((line) => line.includes('possible N+1'))
    .map((line) => JSON.parse(line) as { level: number; operation: string; sqlQueries: number });

beforeAll(async () => {
  app = await startTestApp();
  const users = await Promise.all([
    createUser(app.deps.db, 'AUTHOR'),
    createUser(app.deps.db, 'AUTHOR'),
  ]);
  await createPosts(
    app.deps.db,
    Array.from({ length: 10 }, (_, index) => ({ authorId: users[index % 2]!.id })),
  );
  // The N+1 baseline switch makes the same query issue one statement per row.
  server = await startProcess('main', {
    DATABASE_URL: app.database.url,
    WORKER: 'off',
    CACHE: 'off',
    LOADER_BATCHING: 'off',
    SQL_QUERY_WARN_THRESHOLD: '10',
  });
});

afterAll(async () => {
  await server?.stop();
  await app?.close();
});

describe('N+1 detector', { timeout: 60_000 }, () => {
  it('logs a warning with the operation and its count past SQL_QUERY_WARN_THRESHOLD, not below', async () => {
    await post('query Small { posts(first: 2) { edges { node { title } } } }');
    expect(warnings()).toEqual([]);
    await post(nested);
    for (let wait = 0; wait < 50 && warnings().length === 0; wait += 1)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const [warning] = warnings();
    expect(warning).toMatchObject({ level: 40, operation: 'Nested' });
    expect(warning!.sqlQueries).toBeGreaterThan(10);
    expect(warnings()).toHaveLength(1);
  });
});
