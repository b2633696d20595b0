import type { TestApp } from './app.ts';

/**
 * Resolves once `app` serves `token`'s viewer from its cache (a request then runs no statement
 * for the token), so statement counts do not depend on whether the token was looked up lately.
 */
export async function warmViewer(app: TestApp, token: string): Promise<void> {
  for (const deadline = Date.now() + 3000; ; ) {
    const probe = await app.gql('{ __typename }', {}, { token, debug: true });
    if (probe.extensions?.sql?.queries === 0) return;
    if (Date.now() > deadline) throw new Error('the viewer never came from the cache');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
