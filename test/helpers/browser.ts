import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium: the browser tests drive it through playwright-core (no downloaded browser). */
export const CHROMIUM = '/usr/bin/chromium';

const INSTALL =
  'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium';

/** The one command a user without root runs before `npm test`. */
export const installHint = `Chromium is required for the browser tests (${CHROMIUM} is missing); install it once with: sudo sh -c '${INSTALL}'`;

/**
 * Installs Debian's chromium when it is missing and this process may (root, apt-get present), so
 * `npm test` passes on a fresh machine by itself; otherwise leaves it to `launchChromium`, which
 * fails the browser tests with `installHint` while every other test still runs. Returns whether
 * chromium is there afterwards.
 */
export function ensureChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return false;
  console.log(`installing Debian's chromium for the browser tests: ${INSTALL}`);
  const result = spawnSync('sh', ['-c', INSTALL], { stdio: 'inherit' });
  if (result.status !== 0) console.error(`installing chromium failed (exit ${result.status})`);
  return existsSync(CHROMIUM);
}

/** Headless chromium with the background traffic (updates, sync, QUIC probes) turned off. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(installHint);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
