import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type ServerProcess, startProcess } from '../helpers/processes.ts';

let app: TestApp;
let server: ServerProcess;

beforeAll(async () => {
  app = await startTestApp();
  server = await startProcess('main', { DATABASE_URL: app.database.url, WORKER: 'off' });
});

afterAll(async () => {
  await server?.stop();
  await app?.close();
});

describe('the line `npm start` prints when ready', () => {
  it('names the dashboard, GraphiQL and the API, and each answers at its URL', async () => {
    const line = server
      .output()
      .split('\n')
      .find((text) => text.includes('Quire is serving'));
    const urls =
      /the dashboard at (http:\/\/\S+\/), GraphiQL and the API at (http:\/\/\S+\/graphql)"/.exec(
        line ?? '',
      );
    expect(urls, line).not.toBeNull();
    const [, dashboard, graphql] = urls!;
    expect(graphql).toBe(server.url);

    const page = await fetch(dashboard!);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('/dashboard/app.js');

    const graphiql = await fetch(graphql!, { headers: { accept: 'text/html' } });
    expect(graphiql.headers.get('content-type')).toContain('text/html');
    const html = await graphiql.text();
    expect(html).toContain('renderYogaGraphiQL');
    // Served whole from this process (test/dashboard/graphiql.test.ts drives it offline).
    expect(html).not.toContain('unpkg.com');

    const api = await fetch(graphql!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(await api.json()).toEqual({ data: { __typename: 'Query' } });
  });
});
