import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/infra/logger.ts';
import { startTestApp } from '../helpers/app.ts';
import { createPosts, createUser, type TestUser } from '../helpers/factories.ts';
import {
  closeInstances,
  type Instance,
  type LogLine,
  serveInstance,
} from '../helpers/http-instances.ts';
import { redisUrl } from '../helpers/services.ts';

// An anonymous entry answered early (src/plugins/response-cache.ts `early`, app.ts `viewerOf`)
// must reach exactly the requests the whole path would answer anonymously. Authorization headers
// are sent as raw bytes (node:http, not fetch, which normalizes them): empty, blank, a bare
// scheme, another case, tabs, two headers, another scheme. Each answer is compared with the
// whole path's answer to the same request (the debug header always takes the whole path).

const lines: LogLine[] = [];
const logger = createLogger(
  { LOG_LEVEL: 'info' },
  { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
);
let a: Instance;
let writer: TestUser;
let other: TestUser;
const query = '{ viewer { name } posts(first: 5) { totalCount edges { node { title } } } }';

beforeAll(async () => {
  a = await serveInstance(
    await startTestApp({ REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '1000' }, undefined, logger),
  );
  writer = await createUser(a.app.deps.db, 'AUTHOR', 'Wanda');
  other = await createUser(a.app.deps.db, 'AUTHOR', 'Otto');
  await createPosts(a.app.deps.db, [
    { authorId: writer.id, title: 'Public one' },
    { authorId: writer.id, title: 'Wanda draft', status: 'DRAFT' },
  ]);
});

afterAll(() => closeInstances(a));

interface Raw {
  status: number;
  body: Record<string, any>;
  line: LogLine;
}

/** POSTs `query` with exactly these Authorization header values (each its own header line). */
function raw(authorization: string[], extra: Record<string, string> = {}): Promise<Raw> {
  const requestId = `odd-${Math.random().toString(36).slice(2)}`;
  const url = new URL(a.url);
  const headers: Record<string, string | string[]> = {
    'content-type': 'application/json',
    'x-request-id': requestId,
    ...(authorization.length ? { authorization } : {}),
    ...extra,
  };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', async () => {
          let line: LogLine | undefined;
          for (let wait = 0; wait < 100 && !line; wait += 1) {
            line = lines.find((entry) => entry.msg === 'request' && entry.reqId === requestId);
            if (!line) await new Promise((done) => setTimeout(done, 10));
          }
          let body: Record<string, any> = { text };
          try {
            body = JSON.parse(text) as Record<string, any>;
          } catch {
            // Not JSON: kept as text for the assertion's message.
          }
          resolve({ status: res.statusCode!, body, line: line! });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ query }));
  });
}

describe('odd Authorization headers beside a warm anonymous entry', () => {
  it('answer as the whole path does, early only where it is anonymous', async () => {
    // Warm the anonymous entry (a second request answers early).
    let anonymous = await raw([]);
    for (let attempt = 0; attempt < 3 && !anonymous.line.answeredEarly; attempt += 1)
      anonymous = await raw([]);
    expect(anonymous.line.answeredEarly).toBe(true);
    expect(anonymous.body.data.viewer).toBeNull();
    const cases: { values: string[]; expect: 'anonymous' | 401 | 'writer' }[] = [
      { values: [''], expect: 'anonymous' },
      { values: ['   '], expect: 'anonymous' },
      { values: ['Bearer'], expect: 401 },
      { values: ['Bearer    '], expect: 401 },
      { values: ['Bearer ""'], expect: 401 },
      { values: ['bearer x'], expect: 401 },
      { values: ['Basic d2FuZGE6cHc='], expect: 401 },
      { values: ['null'], expect: 401 },
      { values: [`bearer ${writer.token}`], expect: 'writer' },
      { values: [`BEARER \t ${writer.token}  `], expect: 'writer' },
      { values: [`Bearer ${writer.token} extra`], expect: 401 },
      // Node keeps the first of repeated Authorization headers (http.IncomingMessage.headers);
      // the early path must read the same one as the whole path.
      { values: [`Bearer ${writer.token}`, `Bearer ${other.token}`], expect: 'writer' },
      { values: [`Bearer ${writer.token}`, ''], expect: 'writer' },
      { values: ['', `Bearer ${other.token}`], expect: 'anonymous' },
      { values: ['Bearer', `Bearer ${writer.token}`], expect: 401 },
    ];
    for (const attack of cases) {
      const label = JSON.stringify(attack.values);
      // Twice: the second could be answered from an entry the first stored.
      for (let round = 0; round < 2; round += 1) {
        const got = await raw(attack.values);
        const whole = await raw(attack.values, { 'x-quire-debug': '1' });
        expect(got.status, label).toBe(whole.status);
        expect(got.body.data ?? null, label).toEqual(whole.body.data ?? null);
        expect(
          got.body.errors?.map((e: any) => e.extensions.code),
          label,
        ).toEqual(whole.body.errors?.map((e: any) => e.extensions.code));
        expect(got.line.status, label).toBe(got.status);
        if (attack.expect === 401) {
          expect(got.status, label).toBe(401);
          expect(got.body.errors[0].extensions.code, label).toBe('UNAUTHENTICATED');
          expect(got.line.answeredEarly, label).toBeUndefined();
        } else if (attack.expect === 'anonymous') {
          expect(got.body.data.viewer, label).toBeNull();
          expect(
            got.body.data.posts.edges.map((e: any) => e.node.title),
            label,
          ).toEqual(['Public one']);
          if (round === 1) expect(got.line.answeredEarly, label).toBe(true);
        } else {
          expect(got.body.data.viewer, label).toEqual({ name: 'Wanda' });
          expect(got.body.data.posts.edges.map((e: any) => e.node.title).sort(), label).toEqual([
            'Public one',
            'Wanda draft',
          ]);
        }
      }
    }
  });
});
