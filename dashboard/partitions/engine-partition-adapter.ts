/**
 * What the bull-board adapters over a fleet engine's partitions share (the in-memory and
 * the pg-boss engines; BullMQ partitions use bull-board's own adapter): the partition's
 * name `queue.tenant`, the statuses, no logs, metrics, Redis stats, pause or schedulers,
 * and every action the engine cannot take refused through the subclass's `refuse`.
 */
import { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import type {
  AppJobScheduler,
  JobSchedulerUpdateResult,
  JobStatus,
  QueueJob,
  QueueMetrics,
  Status,
} from '@bull-board/api/dist/types.js';

/** The statuses a fleet engine's partition has, as bull-board names them. */
export const STATUSES = ['active', 'waiting', 'delayed', 'completed', 'failed'] as const;

/** A bull-board adapter over one (queue, tenant) partition of a fleet engine. */
export abstract class EnginePartitionAdapter extends BaseAdapter {
  protected readonly queue: string;
  protected readonly tenant: string;

  constructor(queue: string, tenant: string, readOnly: boolean) {
    super('bullmq', { readOnlyMode: readOnly, allowRetries: !readOnly, delimiter: '.' });
    this.queue = queue;
    this.tenant = tenant;
  }

  /** Throws the engine's {@link UnsupportedError} for an action it cannot take. */
  protected abstract refuse(action: string): never;

  getName(): string {
    return `${this.queue}.${this.tenant}`;
  }

  getStatuses(): Status[] {
    return ['latest', ...STATUSES];
  }

  getJobStatuses(): JobStatus[] {
    return [...STATUSES];
  }

  async getJobLogs(): Promise<string[]> {
    return [];
  }

  async getMetrics(): Promise<QueueMetrics> {
    return { meta: { count: 0, prevTS: 0, prevCount: 0 }, data: [], count: 0 };
  }

  // Not on Redis: bull-board shows no server stats for it.
  async getRedisInfo(): Promise<string | null> {
    return null;
  }

  async isPaused(): Promise<boolean> {
    return false;
  }

  async getJobSchedulers(): Promise<Omit<AppJobScheduler, 'queueName'>[]> {
    return [];
  }

  async getJobSchedulersCount(): Promise<number> {
    return 0;
  }

  async addJob(): Promise<QueueJob> {
    return this.refuse('add a job');
  }

  async pause(): Promise<void> {
    this.refuse('pause');
  }

  async resume(): Promise<void> {
    this.refuse('resume');
  }

  async empty(): Promise<void> {
    this.refuse('empty the partition');
  }

  async obliterate(): Promise<void> {
    this.refuse('obliterate the partition');
  }

  async removeJobScheduler(): Promise<boolean> {
    return this.refuse('remove a job scheduler');
  }

  async updateJobScheduler(): Promise<JobSchedulerUpdateResult> {
    return this.refuse('update a job scheduler');
  }

  async runJobSchedulerNow(): Promise<QueueJob | 'not-found'> {
    return this.refuse('run a job scheduler');
  }

  async setGlobalConcurrency(): Promise<void> {
    this.refuse('set the concurrency');
  }
}
