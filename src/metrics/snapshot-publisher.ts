/**
 * Publishes this process's snapshot about once a second into the engine, so that a
 * dashboard or `tenant-fleet status` anywhere sees the whole fleet. It only listens to
 * the workers' events and reads `pools.stats()`: nothing in the job path waits for it.
 *
 * ```ts
 * const publisher = new SnapshotPublisher({ engine: fleet.engine, pools: fleet.pools });
 * publisher.watch(fleet.worker('reports', handler));
 * // … on shutdown:
 * await publisher.close();
 * ```
 */
import { EventEmitter } from 'node:events';
import type { QueueEngine } from '../queue/engine.js';
import { ConfigError } from '../reporting/errors.js';
import type { TenantPools } from '../tenancy/tenant-pools/tenant-pools.js';
import { JobRecorder, type WatchedWorker } from './job-recorder.js';
import { processIdentity } from './process-identity.js';
import { ScheduleRecorder } from './schedule-recorder.js';
import type { ProcessIdentity, ProcessSnapshot } from './snapshot.js';
import type { SnapshotStore } from './snapshot-store.js';
import { snapshotStoreFor } from './store-for-engine.js';

/** Options of {@link SnapshotPublisher}. */
export interface SnapshotPublisherOptions {
  /** The fleet's engine: the snapshots are kept in it. */
  engine: QueueEngine;
  /** The process's pools, whose `stats()` and prewarm report go in each snapshot. */
  pools?: Pick<TenantPools, 'stats' | 'lastPrewarm'> | undefined;
  /** Another store than the engine's (tests). */
  store?: SnapshotStore;
  /** Time between two snapshots. @default 1000 */
  periodMs?: number;
  /** Tenants per snapshot, the most active first. @default 50 */
  topTenants?: number;
}

/** Events of {@link SnapshotPublisher}. */
export interface SnapshotPublisherEventMap {
  /** A snapshot could not be written (Redis down…); the next period tries again. */
  error: [{ error: Error }];
}

/** Publishes one process's snapshots. */
export class SnapshotPublisher extends EventEmitter<SnapshotPublisherEventMap> {
  readonly identity: ProcessIdentity = processIdentity();
  readonly periodMs: number;
  readonly recorder: JobRecorder;
  readonly schedules = new ScheduleRecorder();
  readonly #store: SnapshotStore;
  readonly #ownsStore: boolean;
  readonly #pools: SnapshotPublisherOptions['pools'];
  readonly #topTenants: number;
  readonly #timer: NodeJS.Timeout;
  #publishing: Promise<void> | null = null;
  #closed: Promise<void> | null = null;

  constructor(options: SnapshotPublisherOptions) {
    super();
    const periodMs = options.periodMs ?? 1000;
    const topTenants = options.topTenants ?? 50;
    if (!Number.isInteger(periodMs) || periodMs < 10 || periodMs > 3_600_000)
      throw new ConfigError(
        'periodMs',
        `Expected \`periodMs\` to be an integer between 10 and 3600000, got ${periodMs}`,
      );
    if (!Number.isInteger(topTenants) || topTenants < 0 || topTenants > 10_000)
      throw new ConfigError(
        'topTenants',
        `Expected \`topTenants\` to be an integer between 0 and 10000, got ${topTenants}`,
      );
    this.periodMs = periodMs;
    this.#topTenants = topTenants;
    this.#pools = options.pools;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? snapshotStoreFor(options.engine);
    this.recorder = new JobRecorder(Math.max(topTenants * 4, 100));
    this.#timer = setInterval(() => void this.publish(), periodMs);
    this.#timer.unref();
    void this.publish();
  }

  /** Counts `worker`'s jobs into the snapshots; returns a function that stops. */
  watch(worker: WatchedWorker): () => void {
    return this.recorder.watch(worker);
  }

  /** Puts `scheduler`'s schedules and their last fan-out in the snapshots; returns a function that stops. */
  watchScheduler(scheduler: Parameters<ScheduleRecorder['watch']>[0]): () => void {
    return this.schedules.watch(scheduler);
  }

  /** The snapshot as of now. */
  snapshot(): ProcessSnapshot {
    const running = this.recorder.running();
    const queues: ProcessSnapshot['queues'] = {};
    for (const [queue, counters] of Object.entries(this.recorder.queues()))
      queues[queue] = { ...counters, running: running.get(queue) ?? 0 };
    return {
      ...this.identity,
      heartbeatAt: Date.now(),
      periodMs: this.periodMs,
      queues,
      tenants: this.recorder.topTenants(this.#topTenants),
      running: [...running.values()].reduce((a, b) => a + b, 0),
      pools: this.#pools ? this.#pools.stats() : null,
      prewarm: this.#pools?.lastPrewarm ?? null,
      schedules: this.schedules.schedules(),
    };
  }

  /** Writes a snapshot now (one at a time: a slow write skips the next period). */
  publish(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#publishing ??= this.#store
      .publish(this.snapshot(), this.periodMs * 3)
      .catch((error: Error) => {
        if (this.listenerCount('error') > 0) this.emit('error', { error });
      })
      .finally(() => {
        this.#publishing = null;
      });
    return this.#publishing;
  }

  /** Stops publishing and removes this process's snapshot; idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#timer);
      this.recorder.close();
      this.schedules.close();
      await this.#publishing;
      try {
        await this.#store.remove(this.identity.id);
      } catch {
        // Gone with Redis: the key expires by itself.
      }
      if (this.#ownsStore) await this.#store.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
