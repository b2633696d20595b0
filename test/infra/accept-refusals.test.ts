import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.ts';
import { createUser, type TestUser } from '../helpers/factories.ts';
import {
  closeInstances,
  httpInstances,
  type Instance,
  serveInstance,
} from '../helpers/http-instances.ts';
import { redisUrl } from '../helpers/services.ts';

// The Accept header against what answers it: the 406 refusal before anything runs
// (src/plugins/http-status.ts) for queries, mutations and batches, and yoga's own 406 for a
// subscription no accepted type can stream (only SSE streams one), which must close the
// subscription it opened (src/plugins/sse.ts): before, each such request left one open and
// counted in quire_active_subscriptions for good.

const { logger, send } = httpInstances('accept');
let a: Instance;
let writer: TestUser;

beforeAll(async () => {
  a = await serveInstance(
    await startTestApp({ REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '1000' }, undefined, logger),
  );
  writer = await createUser(a.app.deps.db, 'AUTHOR', 'Ada');
});

afterAll(() => closeInstances(a));

async function openSubscriptions(): Promise<number> {
  return (await a.app.deps.metrics.activeSubscriptions.get()).values[0]?.value ?? 0;
}

async function until(check: () => Promise<boolean>): Promise<boolean> {
  for (let wait = 0; wait < 50; wait += 1) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

describe('Accept refusals', () => {
  it('close the subscription of a stream no accepted type serves (POST and GET)', async () => {
    const before = await openSubscriptions();
    const query = 'subscription Watch { postStatusChanged { status } }';
    for (const method of ['POST', 'GET'] as const) {
      for (const accept of [
        'application/json',
        'application/graphql-response+json',
        'multipart/mixed',
        'application/json, multipart/mixed',
      ]) {
        const refused = await send(a, { method, query, headers: { accept } });
        expect(refused.status, `${method} ${accept}`).toBe(406);
        expect(refused.line).toMatchObject({ status: 406, operation: 'Watch' });
      }
    }
    expect(await until(async () => (await openSubscriptions()) === before)).toBe(true);
    // An accepted stream still opens (and counts) one.
    const controller = new AbortController();
    const response = await fetch(a.url, {
      method: 'POST',
      signal: controller.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, */*;q=0.1' },
      body: JSON.stringify({ query }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(await until(async () => (await openSubscriptions()) === before + 1)).toBe(true);
    controller.abort();
    expect(await until(async () => (await openSubscriptions()) === before)).toBe(true);
  });

  it('answer queries by yoga’s rules (q ignored, */*, charset), mutations refused run nothing', async () => {
    const query = 'query Accepting { posts(first: 1) { totalCount } }';
    const cases: [string, number][] = [
      ['*/*', 200],
      ['application/*', 200],
      ['application/graphql-response+json;q=0', 200],
      ['text/event-stream', 200],
      ['application/json; charset=utf-8', 200],
      ['application/json; charset=utf-16', 406],
      ['application/xml, image/png', 406],
      [',', 406],
      [';', 406],
    ];
    for (const [accept, status] of cases) {
      for (const method of ['POST', 'GET'] as const) {
        const sent = await send(a, { method, query, headers: { accept } });
        expect(sent.status, `${method} ${accept}`).toBe(status);
        expect(sent.line.status).toBe(status);
        if (status === 406) expect(sent.line.sqlQueries, accept).toBe(0);
      }
    }
    const title = `Accept probe ${Math.random().toString(36).slice(2)}`;
    for (const accept of ['text/html', 'application/json; charset=latin1']) {
      const refused = await send(a, {
        query: 'mutation ($input: CreatePostInput!) { createPost(input: $input) { post { id } } }',
        variables: { input: { title, body: 'x' } },
        token: writer.token,
        headers: { accept },
      });
      expect(refused.status).toBe(406);
    }
    // A batch (batching is off) under a refused Accept: refused, nothing run.
    const batch = await send(a, {
      rawBody: JSON.stringify([
        {
          query:
            'mutation ($input: CreatePostInput!) { createPost(input: $input) { post { id } } }',
          variables: { input: { title, body: 'x' } },
        },
      ]),
      token: writer.token,
      headers: { accept: 'text/html' },
    });
    expect([400, 406]).toContain(batch.status);
    const rows = await a.app.deps.db
      .selectFrom('posts')
      .select('id')
      .where('title', '=', title)
      .execute();
    expect(rows).toEqual([]);
  });
});
