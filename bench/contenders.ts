import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { ServerProcess } from '../test/helpers/processes.ts';
import {
  type Contender,
  databaseName,
  databaseUrl,
  poolSize,
  proxied,
  redisPrefix,
  redisUrl,
  smoke,
  spawn,
  spawnScript,
} from './harness.ts';

/**
 * Starts every contender against the bench database: four Quire variants, PostGraphile v4 (not in
 * a smoke run: it needs its own `npm ci`) and hello-world yoga. Each but the last has a twin
 * behind a statement-counting proxy.
 */
export async function startContenders(
  /** The Quire variants to start, by name; all when omitted. */
  quireNames?: string[],
): Promise<{
  contenders: Record<string, Contender>;
  hello: ServerProcess;
}> {
  const contenders: Record<string, Contender> = {};
  /** The contender on a direct connection (its command line recorded), and its twin behind a counting proxy. */
  const startWithCounter = async (
    name: string,
    start: (databaseUrl: string, label?: string) => Promise<ServerProcess>,
  ) => {
    const proxy = await proxied();
    const applicationName = `bench-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
      .replace(/-$/, '')
      .slice(0, 63);
    const [server, twin] = await Promise.all([
      start(databaseUrl(databaseName, undefined, applicationName), name),
      start(databaseUrl(databaseName, proxy.port)),
    ]);
    return {
      url: server.url,
      pid: server.child.pid,
      counter: { url: twin.url, proxy },
      applicationName,
    };
  };
  const quireVariants: [string, Record<string, string>][] = [
    ['Quire', { CACHE: 'off' }],
    [
      'Quire + Redis cache (warm)',
      { CACHE: 'on', REDIS_URL: redisUrl, REDIS_PREFIX: redisPrefix('cache') },
    ],
    [
      'Quire + Redis, resolver cache only (warm)',
      {
        CACHE: 'on',
        RESPONSE_CACHE: 'off',
        REDIS_URL: redisUrl,
        REDIS_PREFIX: redisPrefix('resolver'),
      },
    ],
    ['Naive (LOADER_BATCHING=off)', { CACHE: 'off', LOADER_BATCHING: 'off' }],
  ];
  for (const [name, env] of quireVariants) {
    if (quireNames && !quireNames.includes(name)) continue;
    contenders[name] = await startWithCounter(name, (url, label) =>
      spawn('main', { ...env, WORKER: 'off', DATABASE_URL: url }, label),
    );
  }
  if (!smoke) {
    if (!existsSync(new URL('./postgraphile/node_modules', import.meta.url))) {
      // A contender with its own dependency tree: PostGraphile v4 needs graphql 15.
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefix', 'bench/postgraphile'], {
        stdio: 'inherit',
      });
    }
    contenders.PostGraphile = await startWithCounter('PostGraphile', (url, label) =>
      spawnScript(
        'bench/postgraphile/server.ts',
        { DATABASE_URL: url, DB_POOL_SIZE: poolSize },
        label,
      ),
    );
  }
  const hello = await spawnScript('bench/hello-server.ts', {}, 'hello-world yoga');
  return { contenders, hello };
}
