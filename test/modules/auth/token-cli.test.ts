import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const run = promisify(execFile);
let app: TestApp;

/** `npm run token -- …`, as an operator types it, against this file's database. */
async function tokenCli(...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', 'src/modules/auth/token-cli.ts', ...args], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: app.database.url, REDIS_URL: '', LOG_LEVEL: 'silent' },
  });
}

/** The refusal of a run expected to fail: its exit code and output. */
async function failure(...args: string[]) {
  const failed = await tokenCli(...args).then(
    () => null,
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  if (!failed) throw new Error(`npm run token -- ${args.join(' ')} succeeded`);
  return failed;
}

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(async () => {
  await app?.close();
});

describe('npm run token', { timeout: 60_000 }, () => {
  it('creates the first admin and prints a token the API accepts; a second call adds a token', async () => {
    const first = (await tokenCli('--user', 'Root@Example.test')).stdout.trim();
    expect(first).toMatch(/^qr_/);
    const viewer = '{ viewer { email role apiTokens { name revokedAt } } }';
    const asAdmin = await app.gql(viewer, {}, { token: first });
    expect(asAdmin.errors).toBeUndefined();
    expect(asAdmin.data!.viewer).toMatchObject({ email: 'Root@Example.test', role: 'ADMIN' });

    // Same user, matched case-insensitively: one more token, not one more user.
    const second = (await tokenCli('--user', 'root@example.test')).stdout.trim();
    expect(second).not.toBe(first);
    const again = await app.gql(viewer, {}, { token: second });
    expect(again.data!.viewer.apiTokens).toHaveLength(2);
    const users = await app.deps.db
      .selectFrom('users')
      .select('id')
      .where('email', 'ilike', 'root@example.test')
      .execute();
    expect(users).toHaveLength(1);
    // Only hashes are stored.
    const stored = await app.deps.db.selectFrom('api_tokens').selectAll().execute();
    expect(JSON.stringify(stored)).not.toContain(first.slice(3));
  });

  it('refuses a missing user or an unknown role with its usage line and exit code 2', async () => {
    for (const args of [[], ['--user', 'a@example.test', '--role', 'KING']]) {
      const failed = await tokenCli(...args).then(
        () => null,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(2);
      expect(failed?.stderr).toContain('usage: npm run token');
    }
  });

  it('prints its usage for --help (exit 0) and for --user without a value (exit 2), no stack', async () => {
    const help = await tokenCli('--help');
    expect(help.stdout).toContain('usage: npm run token');
    expect(help.stdout).toMatch(/ADMIN when\s+not\s+given/);
    const failed = await failure('--user');
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('usage: npm run token');
    expect(failed.stderr).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it('refuses an address that is not an email in one line, before any SQL', async () => {
    const failed = await failure('--user', 'notanemail');
    expect(failed.code).toBe(2);
    expect(failed.stderr.trim()).toBe('--user: "notanemail" is not an email address');
    const users = await app.deps.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'notanemail')
      .execute();
    expect(users).toEqual([]);
  });

  it("refuses a --role other than an existing user's role, printing no token", async () => {
    await tokenCli('--user', 'boss@example.test');
    const failed = await failure('--user', 'boss@example.test', '--role', 'VIEWER');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr).toContain('boss@example.test is already ADMIN');
    const tokens = await app.deps.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .select(['users.role'])
      .where('users.email', '=', 'boss@example.test')
      .execute();
    expect(tokens).toEqual([{ role: 'ADMIN' }]);
    // The role it has is accepted, and a new user gets the one asked for.
    expect((await tokenCli('--user', 'boss@example.test', '--role', 'ADMIN')).stdout).toMatch(
      /^qr_/,
    );
    const reader = (await tokenCli('--user', 'reader@example.test', '--role', 'VIEWER')).stdout;
    const asReader = await app.gql('{ viewer { role } }', {}, { token: reader.trim() });
    expect(asReader.data!.viewer.role).toBe('VIEWER');
  });
});
