import { hostname } from 'node:os';
import type { YogaLogger } from 'graphql-yoga';
import { pino } from 'pino';
import type { Config } from '../config.ts';

export type Logger = pino.Logger;

/**
 * Servers log to stdout; a CLI whose stdout is its answer (a token) logs to stderr (fd 2); a test
 * passes its own stream. `base` replaces pino's default bindings, so pid and hostname are kept
 * explicitly; errors go under `err` (pino's serializer: type, message, stack).
 */
export function createLogger(
  config: Pick<Config, 'LOG_LEVEL'>,
  destination: 1 | 2 | pino.DestinationStream = 1,
): Logger {
  return pino(
    { level: config.LOG_LEVEL, base: { pid: process.pid, hostname: hostname(), service: 'quire' } },
    typeof destination === 'number' ? pino.destination(destination) : destination,
  );
}

/**
 * yoga's `logging`. yoga reports every error it masks here, without the request it belongs to;
 * the request log (plugins/request-log.ts) reports the same error once with its request id, so
 * these copies stay at debug.
 */
export function yogaLogger(logger: Logger): YogaLogger {
  const log = logger.child({ component: 'yoga' });
  const text = (args: unknown[]) => args.map(String).join(' ');
  return {
    // yoga logs a few debug lines on every request: not formatted unless they are written.
    debug: (...args: unknown[]) => {
      if (log.isLevelEnabled('debug')) log.debug(text(args));
    },
    info: (...args: unknown[]) => log.info(text(args)),
    warn: (...args: unknown[]) => log.warn(text(args)),
    error: (error: unknown) => log.debug({ err: error }, 'masked error (logged with its request)'),
  };
}
