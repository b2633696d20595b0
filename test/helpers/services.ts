import { Redis } from 'ioredis';
import pg from 'pg';

export const adminDatabaseUrl =
  process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Tests use the real services; a missing one fails the run with a message saying which. */
export async function requirePostgres(): Promise<void> {
  const client = new pg.Client({
    connectionString: adminDatabaseUrl,
    connectionTimeoutMillis: 3000,
  });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(
      `PostgreSQL is required for the tests and is not reachable at ${adminDatabaseUrl}: ${String(error)}. ` +
        'Start it (see .ci/run) or set DATABASE_URL.',
    );
  } finally {
    await client.end().catch(() => {});
  }
}

export function databaseUrl(name: string): string {
  const url = new URL(adminDatabaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function withAdminClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminDatabaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Waits until Redis itself reports a subscriber on every channel: no guessing how long it takes. */
export async function waitForRedisSubscribers(channels: string[]): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    for (const deadline = Date.now() + 10_000; ; ) {
      const counts = (await redis.pubsub('NUMSUB', ...channels)) as (string | number)[];
      if (counts.filter((_, index) => index % 2 === 1).every((count) => Number(count) > 0)) return;
      if (Date.now() > deadline) throw new Error(`no subscriber on ${channels.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    redis.disconnect();
  }
}
