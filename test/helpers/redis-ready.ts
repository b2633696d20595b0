import type { TestApp } from './app.ts';

/**
 * Waits until each app's Redis answers. Cache and rate-limit calls made while the connection is
 * still opening fail at once (no offline queue) and take the Redis-down path: a test counting
 * hits or shared limits starts after this.
 */
export async function untilRedisReachable(...apps: TestApp[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const app of apps) {
    while (!(await app.deps.redisReachable().catch(() => false))) {
      if (Date.now() > deadline) throw new Error('redis not reachable');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
