import { sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appError } from '../../src/errors.ts';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { withHttpStatus } from '../../src/plugins/http-status.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

/**
 * A statement Postgres cancels for running over DB_STATEMENT_TIMEOUT_MS reaches the client as
 * TIMEOUT (no SQL, no stack) and the log with its request id; a statement canceled for another
 * reason stays an unexpected error. The statement is held by a row lock another session keeps.
 */
let timing: TestApp;
let patient: TestApp;
const servers = new Map<TestApp, HttpServer>();
const logLines: string[] = [];
let author: TestUser;
let postId: string;
let locker: pg.Client;

beforeAll(async () => {
  const env = { DB_STATEMENT_TIMEOUT_MS: '300', CACHE: 'off', RESPONSE_CACHE: 'off' };
  timing = await startTestApp(
    env,
    undefined,
    pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) }),
  );
  patient = await startTestApp({ ...env, DB_STATEMENT_TIMEOUT_MS: '20000' }, timing);
  for (const app of [timing, patient])
    servers.set(app, await startHttpServer(app.yoga, httpOptions(app.deps.config, 0)));
  author = await createUser(timing.deps.db, 'AUTHOR');
  const [post] = await createPosts(timing.deps.db, [{ authorId: author.id, title: 'Locked' }]);
  postId = post!.id;
  locker = new pg.Client({ connectionString: timing.database.url });
  await locker.connect();
});

afterAll(async () => {
  await locker?.end();
  for (const server of servers.values()) await server.close();
  for (const app of [patient, timing]) await app?.close();
});

/** Holds the post's row lock in a transaction of its own while `work` runs. */
async function whileLocked<T>(work: () => Promise<T>): Promise<T> {
  await locker.query('begin');
  await locker.query('select id from posts where id = $1 for update', [postId]);
  try {
    return await work();
  } finally {
    await locker.query('rollback');
  }
}

/** updatePost on the locked post, over HTTP as a client sends it. */
async function updatePost(app: TestApp, requestId: string) {
  const response = await fetch(`http://127.0.0.1:${servers.get(app)!.port}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      authorization: `Bearer ${author.token}`,
      'x-request-id': requestId,
    },
    body: JSON.stringify({
      query: 'mutation($id: ID!) { updatePost(input: { id: $id, title: "New" }) { post { id } } }',
      variables: { id: globalId('Post', postId) },
    }),
  });
  return { status: response.status, text: await response.text() };
}

describe('statement timeout', () => {
  it('reaches the client as TIMEOUT, without SQL or stack, and the log with its request id', async () => {
    const { status, text } = await whileLocked(() => updatePost(timing, 'timeout-1'));
    const body = JSON.parse(text) as {
      data: unknown;
      errors: { message: string; path: string[]; extensions: Record<string, unknown> }[];
    };
    expect(status).toBe(200);
    expect(body.data).toBeNull();
    expect(body.errors).toEqual([
      {
        message: 'The database took too long to answer; try again later',
        path: ['updatePost'],
        extensions: { code: 'TIMEOUT' },
      },
    ]);
    expect(text).not.toMatch(/posts|canceling|statement_timeout|\.ts:/);
    const logged = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.reqId === 'timeout-1');
    expect(logged).toEqual([
      expect.objectContaining({
        level: 40,
        code: 'TIMEOUT',
        err: expect.objectContaining({ code: '57014' }),
      }),
    ]);
  });

  it('leaves a statement canceled on request (not by the timeout) an unexpected error', async () => {
    const { text } = await whileLocked(async () => {
      const response = updatePost(patient, 'canceled-1');
      for (const deadline = Date.now() + 10_000; ; ) {
        // Not on the locker: within its transaction pg_stat_activity is a snapshot.
        const { rows } = await sql<{ canceled: boolean }>`
          select pg_cancel_backend(pid) as canceled from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(patient.deps.db);
        if (rows.length > 0) break;
        if (Date.now() > deadline) throw new Error('the update never waited for the lock');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return response;
    });
    const body = JSON.parse(text) as { errors: { extensions: Record<string, unknown> }[] };
    expect(body.errors.map((error) => error.extensions.code)).toEqual(['INTERNAL_SERVER_ERROR']);
  });

  it('answers 503 when it refuses the whole request (before execution), as a server-side failure', () => {
    const [error] = withHttpStatus({ errors: [appError('TIMEOUT', 'late')] })!;
    expect(error!.extensions.http).toEqual({ status: 503 });
  });
});
