/** Where Redis is: one server, or the seed nodes of a Redis Cluster with shared credentials. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | {
      kind: 'cluster';
      nodes: { host: string; port: number }[];
      username?: string;
      password?: string;
      tls: boolean;
    };

const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]+)\/?$/;

/**
 * Reads REDIS_URL: `redis://` or `rediss://` for one server (ioredis URL syntax), or
 * `redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://` for TLS) for a
 * Redis Cluster, whose listed nodes are only the seeds: the client discovers the others. Throws
 * an Error saying what is wrong.
 */
export function parseRedisUrl(value: string): RedisTarget {
  const cluster = CLUSTER_URL.exec(value);
  if (cluster) {
    const [, scheme, auth, hosts] = cluster;
    const nodes = hosts!.split(',').map((node) => {
      const parsed = URL.canParse(`redis://${node}`) ? new URL(`redis://${node}`) : undefined;
      if (!parsed?.hostname || !parsed.port || parsed.host !== node) {
        throw new Error(`cluster node "${node}" must be host:port`);
      }
      return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) };
    });
    const separator = auth?.indexOf(':') ?? -1;
    const username = auth && separator >= 0 ? auth.slice(0, separator) : auth;
    const password = auth && separator >= 0 ? auth.slice(separator + 1) : undefined;
    return {
      kind: 'cluster',
      nodes,
      username: username ? decodeURIComponent(username) : undefined,
      password: password ? decodeURIComponent(password) : undefined,
      tls: scheme === 'rediss',
    };
  }
  if (!URL.canParse(value) || !['redis:', 'rediss:'].includes(new URL(value).protocol)) {
    throw new Error(
      'must be redis://…, rediss://… or redis+cluster://host:port[,host:port…] (a Redis Cluster)',
    );
  }
  return { kind: 'single', url: value };
}
