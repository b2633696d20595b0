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

// Every GraphQL request yoga serves gets one request line (its id, status, operation) and one
// observation in the duration histogram, refusals included (400, 401, 405, 406), and on every
// path yoga serves as its endpoint: src/plugins/request-log.ts matches the paths of
// graphql-yoga's unhandled-route check, or a request to `/graphql/` would leave no trace.
// The guards' refusals (413, 415) come before the log (app.ts): no line, the id still echoed.

const { logger, send } = httpInstances('refusal');
let a: Instance;
let writer: TestUser;

beforeAll(async () => {
  a = await serveInstance(
    await startTestApp({ REDIS_URL: redisUrl, MAX_BODY_BYTES: '2048' }, undefined, logger),
  );
  writer = await createUser(a.app.deps.db, 'AUTHOR', 'Rita');
});

afterAll(() => closeInstances(a));

/** The histogram's count for this operation label and status. */
async function observed(operation: string, status: number): Promise<number> {
  const metric = await a.app.deps.metrics.requestDuration.get();
  const sample = metric.values.find(
    (value) =>
      value.metricName?.endsWith('_count') &&
      value.labels.operation === operation &&
      value.labels.status === String(status),
  );
  return sample?.value ?? 0;
}

describe('request lines and metrics of refusals', () => {
  const trailing = () => ({ ...a, url: `${a.url}/` });
  const cases: {
    name: string;
    status: number;
    operation: string;
    instance?: () => Instance;
    init: () => Parameters<typeof send>[1];
  }[] = [
    {
      name: '400 without a query',
      status: 400,
      operation: 'anonymous',
      init: () => ({ rawBody: '{}' }),
    },
    {
      name: '405 mutation over GET',
      status: 405,
      operation: 'anonymous',
      init: () => ({ method: 'GET', query: 'mutation Nope { __typename }' }),
    },
    {
      name: '406 Accept no type serves',
      status: 406,
      operation: 'anonymous',
      init: () => ({
        query: 'query Refused406 { __typename }',
        headers: { accept: 'application/xml' },
      }),
    },
    {
      name: '401 malformed Authorization',
      status: 401,
      operation: 'anonymous',
      init: () => ({ query: '{ __typename }', headers: { authorization: 'Bearer' } }),
    },
    {
      name: '200 on /graphql/ (POST)',
      status: 200,
      operation: 'Slash',
      instance: trailing,
      init: () => ({ query: 'query Slash { viewer { name } }', token: writer.token }),
    },
    {
      name: '200 on /graphql/ (GET)',
      status: 200,
      operation: 'SlashGet',
      instance: trailing,
      init: () => ({ method: 'GET', query: 'query SlashGet { __typename }' }),
    },
    {
      name: '406 on /graphql/',
      status: 406,
      operation: 'anonymous',
      instance: trailing,
      init: () => ({ query: '{ __typename }', headers: { accept: 'text/html' } }),
    },
  ];
  for (const refusal of cases) {
    it(`${refusal.name}: one line with its id and status, one observation`, async () => {
      const before = await observed(refusal.operation, refusal.status);
      const sent = await send(refusal.instance?.() ?? a, refusal.init());
      expect(sent.status).toBe(refusal.status);
      expect(sent.line, 'no request line').toBeDefined();
      expect(sent.line).toMatchObject({ status: refusal.status, operation: refusal.operation });
      expect(sent.headers.get('x-request-id')).toBe(sent.line.reqId);
      expect(await observed(refusal.operation, refusal.status)).toBe(before + 1);
    });
  }

  it('413 and 415 from the guards: refused before the log, the request id still echoed', async () => {
    const refusals = [
      { status: 413, init: { query: `query Big { __typename } # ${'x'.repeat(4096)}` } },
      {
        status: 415,
        init: { rawBody: 'query { __typename }', headers: { 'content-type': 'text/plain' } },
      },
    ];
    for (const refusal of refusals) {
      const before = await observed('anonymous', refusal.status);
      const response = await fetch(a.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-request-id': 'guarded-1',
          ...refusal.init.headers,
        },
        body: refusal.init.rawBody ?? JSON.stringify({ query: refusal.init.query }),
      });
      expect(response.status).toBe(refusal.status);
      expect(response.headers.get('x-request-id')).toBe('guarded-1');
      expect((await response.json()).errors).toHaveLength(1);
      expect(await observed('anonymous', refusal.status)).toBe(before);
    }
  });
});
