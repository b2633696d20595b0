import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

export interface RedisCluster {
  /** REDIS_URL for the app: `redis+cluster://` with every master as a seed. */
  url: string;
  ports: number[];
  /** Waits until every channel has a subscriber on some node (classic pub/sub is cluster-wide). */
  waitForSubscribers(channels: string[]): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Three masters whose client and bus ports (port + 10000) are free: test files run in parallel,
 * so fixed ports would collide.
 */
async function freePorts(): Promise<number[]> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 9_000) * 2;
    const ports = [base, base + 1, base + 2];
    const free = await Promise.all(
      ports.flatMap((port) => [portFree(port), portFree(port + 10_000)]),
    );
    if (free.every(Boolean)) return ports;
  }
}

/**
 * A local 3-master Redis Cluster (the machine's redis-server and redis-cli, no replicas, no
 * persistence, config in a temp dir), ready to serve every slot; `stop()` kills it and removes
 * its files.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'quire-redis-cluster-'));
  const ports = await freePorts();
  const servers: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes'],
        ...['--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir],
        ...['--save', '', '--appendonly', 'no', '--logfile', path.join(dir, `${port}.log`)],
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            if (server.exitCode !== null) return resolve();
            server.once('exit', () => resolve());
            server.kill('SIGKILL');
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  const nodes = ports.map((port) => new Redis(port, '127.0.0.1', { lazyConnect: true }));
  // Refused connections while the servers start are expected: ping() below retries.
  for (const node of nodes) node.on('error', () => {});
  try {
    for (const node of nodes) {
      for (let attempt = 0; ; attempt += 1) {
        if (await node.ping().catch(() => false)) break;
        if (attempt > 100) throw new Error(`redis-server on ${node.options.port} did not start`);
        await sleep(50);
      }
    }
    await promisify(execFile)('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      ...['--cluster-replicas', '0', '--cluster-yes'],
    ]);
    for (const node of nodes) {
      for (let attempt = 0; ; attempt += 1) {
        if (((await node.cluster('INFO')) as string).includes('cluster_state:ok')) break;
        if (attempt > 200) throw new Error('redis cluster did not reach cluster_state:ok');
        await sleep(50);
      }
    }
  } catch (error) {
    for (const node of nodes) node.disconnect();
    await stop();
    throw error;
  }
  return {
    url: `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
    ports,
    async waitForSubscribers(channels) {
      for (const deadline = Date.now() + 10_000; ; ) {
        const counts = await Promise.all(
          nodes.map(async (node) => {
            const reply = (await node.pubsub('NUMSUB', ...channels)) as (string | number)[];
            return reply.filter((_, index) => index % 2 === 1).map(Number);
          }),
        );
        if (channels.every((_, index) => counts.some((perNode) => perNode[index]! > 0))) return;
        if (Date.now() > deadline) throw new Error(`no subscriber on ${channels.join(', ')}`);
        await sleep(20);
      }
    },
    async stop() {
      for (const node of nodes) node.disconnect();
      await stop();
    },
  };
}
