import { pino } from 'pino';
import type { Config } from '../config.ts';

export type Logger = pino.Logger;

/** Servers log to stdout; a CLI whose stdout is its answer (a token) logs to stderr (fd 2). */
export function createLogger(config: Pick<Config, 'LOG_LEVEL'>, fd: 1 | 2 = 1): Logger {
  return pino({ level: config.LOG_LEVEL, base: { service: 'quire' } }, pino.destination(fd));
}
