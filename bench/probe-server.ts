import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * The settings both probes start a Quire checkout with: no cache, no worker, no migrations, pool
 * 10, quiet logs, no slow-query lines; callers add their own (raised rate limits, REDIS_URL, …).
 */
export const probeEnv = {
  CACHE: 'off',
  WORKER: 'off',
  LOG_LEVEL: 'warn',
  MIGRATE_ON_START: 'off',
  DB_POOL_SIZE: '10',
  SLOW_QUERY_MS: '100000',
};

/**
 * A Quire contender as the probes name it on their command line: `name=<checkout>[:VAR=value,…]`,
 * split at the first `=` and `:` only (values such as REDIS_URL hold both of their own).
 */
export function parseContender(spec: string): {
  name: string;
  checkout: string;
  env: Record<string, string>;
} {
  const name = spec.slice(0, spec.indexOf('='));
  const rest = spec.slice(spec.indexOf('=') + 1);
  const colon = rest.indexOf(':');
  const env: Record<string, string> = {};
  for (const pair of colon === -1 ? [] : rest.slice(colon + 1).split(',')) {
    const equals = pair.indexOf('=');
    if (equals > 0) env[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return { name, checkout: colon === -1 ? rest : rest.slice(0, colon), env };
}

/**
 * Starts `src/main.ts` of the checkout at `checkout` on a random port in 4200–4899 (fetch refuses
 * 4190, a "bad port", just below), with `env` over the probe settings, and resolves once it
 * answers `{ __typename }` (about 20 s at most). `profileDir`: write a .cpuprofile there at exit.
 */
export async function startQuireCheckout(
  checkout: string,
  env: Record<string, string>,
  profileDir?: string,
): Promise<{ child: ChildProcess; url: string }> {
  const port = 4200 + Math.floor(Math.random() * 700);
  const args = ['--import', 'tsx', 'src/main.ts'];
  if (profileDir) args.unshift('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  const child = spawn('node', args, {
    cwd: resolve(checkout),
    env: { ...process.env, ...probeEnv, PORT: String(port), ...env },
    stdio: 'inherit',
  });
  const url = `http://127.0.0.1:${port}/graphql`;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetch(url, { method: 'POST', body: '{"query":"{__typename}"}' });
      return { child, url };
    } catch (error) {
      if (attempt > 100) throw error;
      await new Promise((done) => setTimeout(done, 200));
    }
  }
}
