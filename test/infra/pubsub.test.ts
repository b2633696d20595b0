import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/infra/logger.ts';
import { createQuirePubSub, type PipelineEventMessage } from '../../src/infra/pubsub.ts';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.ts';
import { redisUrl, waitForRedisSubscribers } from '../helpers/services.ts';

const logger = createLogger({ LOG_LEVEL: 'silent' });

const event = (runId: string, seq: number): PipelineEventMessage => ({
  id: `${runId}-${seq}`,
  runId,
  postId: '1',
  seq,
  type: 'step.progress',
  payload: {},
  createdAt: new Date().toISOString(),
});

async function drain(iterator: AsyncIterator<PipelineEventMessage>, count: number) {
  const received: PipelineEventMessage[] = [];
  while (received.length < count) received.push((await iterator.next()).value);
  return received;
}

let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);
afterAll(() => cluster?.stop());

type Target = { url: string; waitForSubscribers(channels: string[]): Promise<void> } | undefined;

describe.each<[string, () => Target]>([
  ['in-process', () => undefined],
  ['Redis', () => ({ url: redisUrl, waitForSubscribers: waitForRedisSubscribers })],
  ['Redis Cluster', () => cluster],
])('pub/sub (%s)', (_name, target) => {
  it('keeps each subscriber’s backlog its own: slow subscribers never get another topic’s events', async () => {
    const prefix = `quire-test-${randomBytes(4).toString('hex')}:`;
    const url = target()?.url;
    const { pubsub, close } = createQuirePubSub(url, prefix, logger, loadConfig({}));
    try {
      const runs = ['101', '202', '303'];
      const subscribers = runs.map((runId) => pubsub.subscribe('pipelineRun', runId));
      // Starting each iterator registers its listener; with Redis, wait for the subscriptions.
      const first = subscribers.map((subscriber) => subscriber.next());
      await target()?.waitForSubscribers(runs.map((runId) => `${prefix}pipelineRun:${runId}`));
      for (let seq = 1; seq <= 50; seq += 1)
        for (const runId of runs) pubsub.publish('pipelineRun', runId, event(runId, seq));
      for (const [index, runId] of runs.entries()) {
        const head = (await first[index]!).value as PipelineEventMessage;
        const rest = await drain(subscribers[index]!, 49);
        const received = [head, ...rest];
        expect(received.map((message) => message.runId)).toEqual(Array(50).fill(runId));
        expect(received.map((message) => message.seq)).toEqual(
          Array.from({ length: 50 }, (_, n) => n + 1),
        );
      }
      await Promise.all(subscribers.map((subscriber) => subscriber.return?.()));
    } finally {
      await close();
    }
  });

  it('delivers what is published as soon as subscriptionsConfirmed resolves', async () => {
    const prefix = `quire-test-${randomBytes(4).toString('hex')}:`;
    const { pubsub, close } = createQuirePubSub(target()?.url, prefix, logger, loadConfig({}));
    try {
      const subscriber = pubsub.subscribe('pipelineRun', '7');
      const next = subscriber.next();
      await pubsub.subscriptionsConfirmed();
      pubsub.publish('pipelineRun', '7', event('7', 1));
      expect(((await next).value as PipelineEventMessage).seq).toBe(1);
      await subscriber.return?.();
    } finally {
      await close();
    }
  });
});
