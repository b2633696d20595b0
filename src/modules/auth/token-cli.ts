import { parseArgs } from 'node:util';
import { loadConfig } from '../../config.ts';
import type { Role } from '../../db/tables.ts';
import { createLogger } from '../../infra/logger.ts';
import { ShutdownSequence } from '../../infra/shutdown.ts';
import { startRuntime } from '../../runtime.ts';
import { ALL_USERS_TAG } from '../user/user.cache.ts';
import { insertToken } from './auth.repository.ts';

/**
 * `npm run token -- --user admin@example.com [--role ADMIN] [--name "Ada"]`: prints a new token,
 * creating the user (ADMIN by default) when missing. How the first admin gets in.
 */
const { values } = parseArgs({
  options: {
    user: { type: 'string' },
    role: { type: 'string', default: 'ADMIN' },
    name: { type: 'string' },
    label: { type: 'string', default: 'cli' },
  },
});
const role = values.role ?? 'ADMIN';
if (!values.user || !['ADMIN', 'EDITOR', 'AUTHOR', 'VIEWER'].includes(role)) {
  console.error(
    'usage: npm run token -- --user <email> [--role ADMIN|EDITOR|AUTHOR|VIEWER] [--name <name>]',
  );
  process.exit(2);
}
const config = loadConfig();
const logger = createLogger({ LOG_LEVEL: 'warn' }, 2);
const shutdown = new ShutdownSequence(logger);
try {
  const { deps } = await startRuntime(config, logger, shutdown, { allowEmbedded: true });
  const email = values.user.trim();
  const existing = await deps.db
    .selectFrom('users')
    .select('id')
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
  const userId =
    existing?.id ??
    (
      await deps.db
        .insertInto('users')
        .values({ email, name: values.name ?? email.split('@')[0]!, role: role as Role })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  if (!existing) await deps.cache.invalidate([ALL_USERS_TAG]);
  const { token } = await insertToken(deps.db, userId, values.label ?? 'cli');
  console.log(token);
} finally {
  await shutdown.run();
}
// The embedded Postgres package's exit hook ends a drained process with 0 whatever exitCode says.
process.exit(process.exitCode ?? 0);
