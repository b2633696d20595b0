import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { type MetricsServer, startMetricsServer } from '../../src/infra/metrics-server.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { wsSubscribe } from '../helpers/clients.ts';
import { createUser } from '../helpers/factories.ts';

const ALLOWED = 'https://app.example';
const FOREIGN = 'https://evil.example';
const METRICS_TOKEN = 'metrics-token-0123456789';

interface Served {
  app: TestApp;
  http: HttpServer;
  base: string;
}

const started: { close(): Promise<void> }[] = [];

/** An app on a real listener; the first one owns the database, the others share it. */
async function serve(env: Record<string, string>, shared?: TestApp): Promise<Served> {
  const app = await startTestApp(env, shared);
  const http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  started.unshift(http, app);
  return { app, http, base: `http://127.0.0.1:${http.port}` };
}

let dev: Served;
let production: Served;
let productionTokened: Served;
let productionOpened: Served;
let metricsListener: MetricsServer;
let token: string;

beforeAll(async () => {
  // A one-entry list: yoga's plain list form would answer every origin with it.
  dev = await serve({ CORS_ORIGINS: ALLOWED });
  production = await serve({ NODE_ENV: 'production', METRICS_PORT: '0' }, dev.app);
  productionTokened = await serve(
    { NODE_ENV: 'production', METRICS_TOKEN, CORS_ORIGINS: `${ALLOWED},https://admin.example` },
    dev.app,
  );
  productionOpened = await serve(
    { NODE_ENV: 'production', GRAPHIQL: 'on', INTROSPECTION: 'on' },
    dev.app,
  );
  // As main.ts does when METRICS_PORT is set.
  metricsListener = await startMetricsServer(production.app.deps.metrics, {
    port: 0,
    host: '127.0.0.1',
  });
  token = (await createUser(dev.app.deps.db, 'AUTHOR')).token;
});

afterAll(async () => {
  await metricsListener?.close();
  for (const resource of started) await resource.close();
});

const preflight = (base: string, origin: string) =>
  fetch(`${base}/graphql`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, authorization',
    },
  });

describe('CORS', () => {
  it('answers a preflight from a foreign origin without any CORS grant', async () => {
    for (const { base } of [dev, productionTokened, production]) {
      const response = await preflight(base, FOREIGN);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
      expect(response.headers.get('access-control-allow-headers')).toBeNull();
    }
  });

  it('grants a listed origin exactly, with credentials', async () => {
    for (const { base } of [dev, productionTokened]) {
      const response = await preflight(base, ALLOWED);
      expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expect(response.headers.get('access-control-allow-credentials')).toBe('true');
      expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    }
    const second = await preflight(productionTokened.base, 'https://admin.example');
    expect(second.headers.get('access-control-allow-origin')).toBe('https://admin.example');
  });

  it('grants nothing by default (no CORS_ORIGINS), even to an origin listed elsewhere', async () => {
    const response = await preflight(production.base, ALLOWED);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('adds no CORS headers to a simple cross-origin GET from a foreign origin', async () => {
    const query = encodeURIComponent('{ __typename }');
    const foreign = await fetch(`${dev.base}/graphql?query=${query}`, {
      headers: { origin: FOREIGN, accept: 'application/json' },
    });
    expect(foreign.status).toBe(200);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    expect(foreign.headers.get('access-control-allow-credentials')).toBeNull();
    const allowed = await fetch(`${dev.base}/graphql?query=${query}`, {
      headers: { origin: ALLOWED, accept: 'application/json' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    expect(allowed.headers.get('access-control-expose-headers')).toContain('x-request-id');
  });
});

describe('/metrics', () => {
  const scrape = (base: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/metrics`, { headers });

  it('is served on the public listener in development and tests', async () => {
    const response = await scrape(dev.base);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# HELP');
  });

  it('is not served publicly in production unless configured', async () => {
    for (const { base } of [production, productionOpened]) {
      const response = await scrape(base);
      expect(response.status).toBe(404);
      expect(await response.text()).not.toContain('# HELP');
    }
  });

  it('with METRICS_PORT: on its own listener, which serves nothing else', async () => {
    const response = await fetch(`http://127.0.0.1:${metricsListener.port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    expect(await response.text()).toContain('# HELP');
    const other = await fetch(
      `http://127.0.0.1:${metricsListener.port}/graphql?query={__typename}`,
    );
    expect(other.status).toBe(404);
  });

  it('with METRICS_TOKEN: only to the bearer of the token', async () => {
    const anonymous = await scrape(productionTokened.base);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await anonymous.text()).not.toContain('# HELP');
    const wrong = await scrape(productionTokened.base, {
      authorization: `Bearer ${METRICS_TOKEN}x`,
    });
    expect(wrong.status).toBe(401);
    const userToken = await scrape(productionTokened.base, { authorization: `Bearer ${token}` });
    expect(userToken.status).toBe(401);
    const right = await scrape(productionTokened.base, {
      authorization: `Bearer ${METRICS_TOKEN}`,
    });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('# HELP');
  });
});

describe('GraphiQL', () => {
  const graphiql = (base: string) => fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });

  it('is served outside production', async () => {
    const response = await graphiql(dev.base);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('GraphiQL');
  });

  it('is off by default in production, and GRAPHIQL=on brings it back', async () => {
    const off = await graphiql(production.base);
    expect(off.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await off.text()).not.toContain('GraphiQL');
    const on = await graphiql(productionOpened.base);
    expect(on.status).toBe(200);
    expect(await on.text()).toContain('GraphiQL');
  });
});

describe('introspection', () => {
  const queries = [
    '{ __schema { types { name } } }',
    '{ __type(name: "Post") { fields { name } } }',
    'query Q { a: __typename ... on Query { __schema { queryType { name } } } }',
  ];
  const refused = (text: string) => {
    expect(text).toContain('introspection');
    expect(text).not.toContain('"types"');
    expect(text).not.toContain('"fields"');
    expect(text).not.toContain('"queryType"');
  };

  it('is refused in production over POST, GET, SSE and graphql-ws', async () => {
    const { base } = production;
    for (const query of queries) {
      const posted = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      refused(await posted.text());
      const got = await fetch(`${base}/graphql?query=${encodeURIComponent(query)}`, {
        headers: { accept: 'application/json' },
      });
      refused(await got.text());
      const streamed = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query }),
      });
      refused(await streamed.text());
      const socket = wsSubscribe(`${base.replace('http', 'ws')}/graphql`, query, {}, { token });
      const outcome = await socket.next().then(
        (result) => JSON.stringify(result.value),
        (errors: unknown) => JSON.stringify(errors),
      );
      await socket.dispose();
      refused(outcome);
    }
  });

  it('answers outside production, and in production with INTROSPECTION=on', async () => {
    for (const { base } of [dev, productionOpened]) {
      const response = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: queries[0] }),
      });
      const body = (await response.json()) as { data?: { __schema?: { types: unknown[] } } };
      expect(body.data?.__schema?.types.length).toBeGreaterThan(10);
    }
  });
});
