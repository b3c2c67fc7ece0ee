/**
 * The engine's Redis connection: one server (a URL or an ioredis `Redis`) or a Redis
 * Cluster (a list of seed nodes or an ioredis `Cluster`). Past this file the engine
 * types both as `Redis`: every command it sends names its keys, so ioredis' Cluster
 * routes it to the master of their slot; only SCAN (see scan.ts) and the subscriber's
 * duplicate differ.
 */
import { Cluster, type ClusterNode, Redis } from 'ioredis';
import { ConfigError, describe } from '../../../reporting/errors.js';

/** A seed node of a cluster: a `redis://host:port` URL or its host and port. */
export type ClusterNodeAddress = string | { host: string; port: number };

/** A Redis Cluster given by seed nodes (any masters or replicas; the rest is discovered). */
export interface ClusterConnection {
  cluster: readonly ClusterNodeAddress[];
}

/** What the engine's `connection` option accepts. */
export type BullMqConnection = string | Redis | Cluster | ClusterConnection;

const URL_SCHEME = /^rediss?:\/\//;
const MAX_SEED_NODES = 1000;

/** The client as an ioredis Cluster when it is one (however it is typed), else null. */
export function asCluster(redis: unknown): Cluster | null {
  return (redis as { isCluster?: unknown } | null)?.isCluster === true ? (redis as Cluster) : null;
}

/** Checks the `connection` option; throws `ConfigError` saying what was expected. */
export function checkConnection(connection: unknown): void {
  if (typeof connection === 'string') {
    if (!URL_SCHEME.test(connection))
      throw new ConfigError(
        'connection',
        'Expected `connection` to be a redis:// or rediss:// URL, got another string',
      );
    return;
  }
  if (typeof connection !== 'object' || connection === null)
    throw new ConfigError(
      'connection',
      `Expected \`connection\` to be a URL, an ioredis instance or { cluster: [...] }, got ${describe(connection)}`,
    );
  if ('cluster' in connection && typeof (connection as { duplicate?: unknown }).duplicate !== 'function') {
    checkSeedNodes((connection as ClusterConnection).cluster);
    return;
  }
  const client = connection as Redis | Cluster;
  if (typeof client.duplicate !== 'function')
    throw new ConfigError(
      'connection',
      `Expected \`connection\` to be a URL, an ioredis instance or { cluster: [...] }, got ${describe(connection)}`,
    );
  const keyPrefix = asCluster(client)?.options.keyPrefix ?? (client as Redis).options.keyPrefix;
  if (keyPrefix)
    throw new ConfigError(
      'connection',
      'Expected an ioredis instance without `keyPrefix`; use the `prefix` option instead',
    );
}

function checkSeedNodes(nodes: unknown): void {
  if (!Array.isArray(nodes) || nodes.length === 0 || nodes.length > MAX_SEED_NODES)
    throw new ConfigError(
      'connection.cluster',
      `Expected \`connection.cluster\` to be a list of 1 to ${MAX_SEED_NODES} nodes, got ${describe(nodes)}`,
    );
  nodes.forEach((node: unknown, i) => {
    const field = `connection.cluster[${i}]`;
    if (typeof node === 'string') {
      if (!URL_SCHEME.test(node) || !URL.canParse(node))
        throw new ConfigError(
          field,
          `Expected \`${field}\` to be a redis://host:port URL, got another string`,
        );
      return;
    }
    const { host, port } = (node ?? {}) as { host?: unknown; port?: unknown };
    if (typeof node !== 'object' || node === null || typeof host !== 'string' || host.length === 0)
      throw new ConfigError(
        field,
        `Expected \`${field}\` to be a URL or { host, port }, got ${describe(node)}`,
      );
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535)
      throw new ConfigError(
        field,
        `Expected \`${field}.port\` to be an integer 1 to 65535, got ${describe(port)}`,
      );
  });
}

/** A seed node as ioredis takes it, and the credentials its URL carried. */
function seedNode(node: ClusterNodeAddress): {
  node: ClusterNode;
  username?: string;
  password?: string;
  tls: boolean;
} {
  if (typeof node !== 'string') return { node: { host: node.host, port: node.port }, tls: false };
  const url = new URL(node);
  return {
    node: { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) },
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    tls: url.protocol === 'rediss:',
  };
}

/**
 * A command connection and whether the caller opened it (and so closes it). By default
 * maxRetriesPerRequest is null: during an outage or CLIENT PAUSE, commands wait instead
 * of failing.
 */
export function openConnection(
  connection: BullMqConnection,
  clientName: string,
  maxRetriesPerRequest: number | null = null,
): { redis: Redis; owns: boolean } {
  if (typeof connection === 'string')
    return { redis: new Redis(connection, { connectionName: clientName, maxRetriesPerRequest }), owns: true };
  if (!('cluster' in connection) || typeof (connection as { duplicate?: unknown }).duplicate === 'function')
    return { redis: connection as Redis, owns: false };
  const seeds = (connection as ClusterConnection).cluster.map(seedNode);
  const first = seeds[0]!;
  const cluster = new Cluster(
    seeds.map((seed) => seed.node),
    {
      redisOptions: {
        connectionName: clientName,
        maxRetriesPerRequest,
        ...(first.username ? { username: first.username } : {}),
        ...(first.password ? { password: first.password } : {}),
        ...(first.tls ? { tls: {} } : {}),
      },
    },
  );
  return { redis: cluster as unknown as Redis, owns: true };
}

/** One more connection like `redis`, named `name`, for pub/sub. */
export function duplicateConnection(redis: Redis, name: string): Redis {
  const cluster = asCluster(redis);
  if (cluster) {
    const options = cluster.options;
    return cluster.duplicate(undefined, {
      redisOptions: { ...options.redisOptions, connectionName: name, maxRetriesPerRequest: null },
    }) as unknown as Redis;
  }
  return redis.duplicate({ connectionName: name, maxRetriesPerRequest: null });
}
