import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser } from '../helpers/factories.ts';
import { startProcess } from '../helpers/processes.ts';
import { adminDatabaseUrl } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

let app: TestApp;
let proxy: TcpProxy;

beforeAll(async () => {
  app = await startTestApp();
  const author = await createUser(app.deps.db, 'AUTHOR');
  await createPosts(app.deps.db, [{ authorId: author.id, title: 'Still here' }]);
  proxy = new TcpProxy('127.0.0.1', Number(new URL(adminDatabaseUrl).port || 5432));
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await app?.close();
});

describe('graceful shutdown', () => {
  it('on SIGTERM finishes the in-flight request, refuses new ones and exits 0', async () => {
    const viaProxy = new URL(app.database.url);
    viaProxy.port = String(proxy.port);
    const server = await startProcess('main', { DATABASE_URL: viaProxy.toString(), WORKER: 'off' });
    try {
      // Every database reply now takes 800 ms: the request below is slow.
      proxy.delayMs = 800;
      const slow = fetch(`${server.url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ posts(first: 1) { edges { node { title } } } }' }),
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const exited = once(server.child, 'exit');
      server.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));

      await expect(fetch(`${server.url}`, { method: 'GET' })).rejects.toThrow();
      const response = await slow;
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        data: { posts: { edges: [{ node: { title: 'Still here' } }] } },
      });
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      const output = server.output();
      expect(output).toContain('"step":"http server","msg":"stopped"');
      // The structured logs of that request: its own line, and the statement the slow database held.
      const lines = output
        .split('\n')
        .flatMap((line) => (line.startsWith('{') ? [JSON.parse(line)] : []));
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'request',
          status: 200,
          sqlQueries: 1,
          operation: 'anonymous',
        }),
      );
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'slow sql',
          sql: expect.stringContaining('select'),
          durationMs: expect.any(Number),
        }),
      );
    } catch (error) {
      console.log(
        server
          .output()
          .split('\n')
          .filter((line) => !line.includes('"level":20'))
          .join('\n'),
      );
      throw error;
    } finally {
      proxy.delayMs = 0;
      await server.stop('SIGKILL');
    }
  });
});
