/**
 * Starts the local Redis Cluster of the run once, for the engine cases that run on a
 * cluster (test/queue/engines.ts), and hands its nodes to the suites with `provide`;
 * stopped when the run ends.
 */
import type { TestProject } from 'vitest/node';
import { startRedisCluster } from './redis-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisClusterNodes: string[];
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startRedisCluster();
  project.provide('redisClusterNodes', cluster.nodes);
  return () => cluster.stop();
}
