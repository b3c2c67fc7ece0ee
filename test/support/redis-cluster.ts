/**
 * A Redis Cluster of the test run's own: three masters (`redis-server --cluster-enabled
 * yes`) on free ports, joined with `redis-cli --cluster create`, nothing kept on disk
 * but their node files in a temporary folder; `stop()` kills them by pid and removes it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './net.js';

const run = promisify(execFile);

/** A running local cluster; `nodes` are its masters' `redis://` URLs. */
export interface LocalRedisCluster {
  nodes: string[];
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      if (await check()) return;
    } catch (error) {
      // Not up yet, unless the server could not even start.
      if ((error as Error).message.startsWith('redis cluster:')) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis cluster: gave up waiting for ${what}`);
}

/** Asks one node `command` on a short-lived connection. */
async function ask(url: string, ...command: string[]): Promise<string> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return String(await probe.call(command[0]!, ...command.slice(1)));
  } finally {
    probe.disconnect();
  }
}

/** Starts three cluster-enabled masters and joins them; resolves once `cluster_state:ok` everywhere. */
export async function startRedisCluster(masters = 3): Promise<LocalRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-fleet-cluster-'));
  const children: ChildProcess[] = [];
  let spawnError: Error | undefined;
  const stop = async () => {
    await Promise.all(
      children.map((child) => {
        // A server that never started (no pid) has nothing to stop.
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return undefined;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        return exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) {
      // The cluster bus port defaults to port + 10000, which a high free port overflows.
      const [port, bus] = [await freePort(), await freePort()];
      ports.push(port);
      const child = spawn(
        'redis-server',
        [
          ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes'],
          ...['--cluster-port', String(bus), '--cluster-config-file', join(dir, `nodes-${port}.conf`)],
          ...['--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir],
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
      child.once('error', (error) => {
        spawnError ??= new Error(
          `redis cluster: could not start redis-server (${error.message}); the cluster suites need Redis 7's redis-server and redis-cli on PATH`,
        );
      });
    }
    const nodes = ports.map((port) => `redis://127.0.0.1:${port}`);
    for (const url of nodes)
      await waitFor(async () => {
        if (spawnError) throw spawnError;
        return (await ask(url, 'PING')) === 'PONG';
      }, `${url} to answer`);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const url of nodes)
      await waitFor(async () => {
        const info = await ask(url, 'CLUSTER', 'INFO');
        return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`);
      }, `${url} to see cluster_state:ok`);
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
