/**
 * Counts what the workers of one process do, from their typed events only: the worker
 * loop knows nothing of metrics. Per queue everything is kept; per tenant only the
 * `maxTenants` most recently active, so 10,000 tenants cannot grow a process's memory
 * or its snapshot without bound.
 */
import type { FleetWorker } from '../worker/fleet-worker.js';
import { emptyHistogram, type JobCounters, observe, type TenantCounters } from './snapshot.js';

/** Recent start delays kept per queue or tenant for the p50 / p99. */
const WAIT_SAMPLES = 256;

interface Counting {
  counters: JobCounters;
  /** A ring of the last WAIT_SAMPLES start delays; `waited` counts every one recorded. */
  waits: Float64Array;
  waited: number;
  /** Sort key for the top N: completed + failed + retried. */
  activity: number;
}

function counting(): Counting {
  return {
    counters: {
      completed: 0,
      failed: 0,
      retried: 0,
      durations: emptyHistogram(),
      waitMs: { p50: 0, p99: 0 },
    },
    waits: new Float64Array(WAIT_SAMPLES),
    waited: 0,
    activity: 0,
  };
}

function percentiles(c: Counting): { p50: number; p99: number } {
  if (c.waited === 0) return { p50: 0, p99: 0 };
  const sorted = c.waits.slice(0, Math.min(c.waited, WAIT_SAMPLES)).sort();
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

/** A worker as the recorder sees it: its queue, its running jobs and its events. */
export type WatchedWorker = Pick<FleetWorker, 'queue' | 'runningCount' | 'on' | 'off' | 'closing'>;

/** Job counters of one process, fed by the events of the workers it watches. */
export class JobRecorder {
  readonly #maxTenants: number;
  readonly #queues = new Map<string, Counting>();
  /** Map order is recency: the first entry is the least recently active tenant. */
  readonly #tenants = new Map<string, Counting & { queue: string; tenant: string }>();
  readonly #workers = new Map<WatchedWorker, () => void>();

  /** @param maxTenants tenants kept per process (most recently active first). */
  constructor(maxTenants = 200) {
    this.#maxTenants = maxTenants;
  }

  /** Starts counting `worker`'s jobs; returns a function that stops. */
  watch(worker: WatchedWorker): () => void {
    const existing = this.#workers.get(worker);
    if (existing) return existing;
    const queue = worker.queue;
    this.#queue(queue);
    const onActive = ({ job }: { job: { tenant: string; enqueuedAt: number } }) => {
      const wait = Math.max(0, Date.now() - job.enqueuedAt);
      for (const c of [this.#queue(queue), this.#tenant(queue, job.tenant)]) {
        c.waits[c.waited % WAIT_SAMPLES] = wait;
        c.waited += 1;
      }
    };
    const onCompleted = ({ job, durationMs }: { job: { tenant: string }; durationMs: number }) => {
      for (const c of [this.#queue(queue), this.#tenant(queue, job.tenant)]) {
        c.counters.completed += 1;
        c.activity += 1;
        observe(c.counters.durations, durationMs);
      }
    };
    const bump =
      (field: 'failed' | 'retried') =>
      ({ job }: { job: { tenant: string } }) => {
        for (const c of [this.#queue(queue), this.#tenant(queue, job.tenant)]) {
          c.counters[field] += 1;
          c.activity += 1;
        }
      };
    const onFailed = bump('failed');
    const onRetrying = bump('retried');
    worker.on('job:active', onActive);
    worker.on('job:completed', onCompleted);
    worker.on('job:failed', onFailed);
    worker.on('job:retrying', onRetrying);
    const stop = () => {
      worker.off('job:active', onActive);
      worker.off('job:completed', onCompleted);
      worker.off('job:failed', onFailed);
      worker.off('job:retrying', onRetrying);
      this.#workers.delete(worker);
    };
    this.#workers.set(worker, stop);
    return stop;
  }

  /** Jobs running now in the watched workers, per queue. */
  running(): Map<string, number> {
    const running = new Map<string, number>();
    for (const worker of this.#workers.keys())
      running.set(worker.queue, (running.get(worker.queue) ?? 0) + worker.runningCount);
    return running;
  }

  /** Counters per queue (copies). */
  queues(): Record<string, JobCounters> {
    const out: Record<string, JobCounters> = {};
    for (const [queue, c] of this.#queues) out[queue] = snapshotOf(c);
    return out;
  }

  /** The `limit` most active tenants (copies), most active first. */
  topTenants(limit: number): TenantCounters[] {
    return [...this.#tenants.values()]
      .sort((a, b) => b.activity - a.activity)
      .slice(0, limit)
      .map((c) => ({ queue: c.queue, tenant: c.tenant, ...snapshotOf(c) }));
  }

  /** Stops watching every worker. */
  close(): void {
    for (const stop of [...this.#workers.values()]) stop();
  }

  #queue(queue: string): Counting {
    let c = this.#queues.get(queue);
    if (!c) {
      c = counting();
      this.#queues.set(queue, c);
    }
    return c;
  }

  #tenant(queue: string, tenant: string): Counting {
    const key = `${queue}\u0000${tenant}`;
    let c = this.#tenants.get(key);
    if (c) this.#tenants.delete(key);
    else c = { ...counting(), queue, tenant };
    this.#tenants.set(key, c);
    if (this.#tenants.size > this.#maxTenants) this.#tenants.delete(this.#tenants.keys().next().value!);
    return c;
  }
}

function snapshotOf(c: Counting): JobCounters {
  return {
    completed: c.counters.completed,
    failed: c.counters.failed,
    retried: c.counters.retried,
    durations: {
      counts: [...c.counters.durations.counts],
      sumMs: c.counters.durations.sumMs,
      count: c.counters.durations.count,
    },
    waitMs: percentiles(c),
  };
}
