import { parseArgs } from 'node:util';
import { loadConfig } from '../../config.ts';
import type { Role } from '../../db/tables.ts';
import { createLogger } from '../../infra/logger.ts';
import { ShutdownSequence } from '../../infra/shutdown.ts';
import { startRuntime } from '../../runtime.ts';
import { ALL_USERS_TAG } from '../user/user.cache.ts';
import { insertToken } from './auth.repository.ts';

const ROLES = ['ADMIN', 'EDITOR', 'AUTHOR', 'VIEWER'] as const;
/** The check constraint of users.email (migrations/20261123000000_initial_schema.ts). */
const EMAIL = /^[^@\s]+@[^@\s]+$/;
const USAGE = `usage: npm run token -- --user <email> [--role ADMIN|EDITOR|AUTHOR|VIEWER] [--name <name>] [--label <label>]

Prints a new API token for <email>. A missing user is created with --role (ADMIN when not
given) and --name (the email's local part when not given). An existing user keeps its role:
--role must then be the role it has. --label names the token (default "cli").`;

/** Ends the process before any connection opens: usage to stdout for --help, else stderr. */
function refuse(message: string, code: number): never {
  (code === 0 ? console.log : console.error)(message);
  process.exit(code);
}

/**
 * `npm run token -- --user admin@example.com [--role ADMIN] [--name "Ada"]`: prints a new token,
 * creating the user (ADMIN by default) when missing. How the first admin gets in.
 */
let values: { user?: string; role?: string; name?: string; label?: string; help?: boolean };
try {
  values = parseArgs({
    options: {
      user: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      label: { type: 'string', default: 'cli' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (error) {
  // parseArgs' own message ("Option '--user <value>' argument missing"), without its stack.
  refuse(`${(error as Error).message}\n${USAGE}`, 2);
}
if (values.help) refuse(USAGE, 0);
const email = values.user?.trim();
if (!email) refuse(USAGE, 2);
if (!EMAIL.test(email) || email.length > 254)
  refuse(`--user: ${JSON.stringify(email)} is not an email address`, 2);
if (values.role !== undefined && !(ROLES as readonly string[]).includes(values.role))
  refuse(`--role: ${JSON.stringify(values.role)} is not one of ${ROLES.join(', ')}\n${USAGE}`, 2);
const config = loadConfig();
const logger = createLogger({ LOG_LEVEL: 'warn' }, 2);
const shutdown = new ShutdownSequence(logger);
try {
  const { deps } = await startRuntime(config, logger, shutdown, { allowEmbedded: true });
  const existing = await deps.db
    .selectFrom('users')
    .select(['id', 'role'])
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
  // A token never carries another role than its user's: changing a role is an admin's mutation.
  if (existing && values.role !== undefined && existing.role !== values.role) {
    console.error(
      `${email} is already ${existing.role}: --role applies only to a new user (an ADMIN changes roles with setUserRole); no token printed`,
    );
    process.exitCode = 1;
  } else {
    const userId =
      existing?.id ??
      (
        await deps.db
          .insertInto('users')
          .values({
            email,
            name: values.name ?? email.split('@')[0]!,
            role: (values.role ?? 'ADMIN') as Role,
          })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    if (!existing) await deps.cache.invalidate([ALL_USERS_TAG]);
    const { token } = await insertToken(deps.db, userId, values.label ?? 'cli');
    console.log(token);
  }
} finally {
  await shutdown.run();
}
// The embedded Postgres package's exit hook ends a drained process with 0 whatever exitCode says.
process.exit(process.exitCode ?? 0);
