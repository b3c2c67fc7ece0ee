/** The types a FleetWorker is built from and the events it emits. */
import type { Logger } from 'pino';
import type { ActiveJob, QueueEngine } from '../queue/engine.js';
import type { Org } from '../tenancy/org.js';
import type { TenantConnection } from '../tenancy/tenant-pools/tenant-connection.js';

/** Where the worker reads orgs: an `OrgRegistry` fits. */
export interface OrgSource {
  /** The org, or `UnknownTenantError`. */
  get(slug: string): Promise<Org>;
  /** Many orgs at once, by slug (absent: not registered); the worker uses it when there. */
  findMany?(slugs: readonly string[]): Promise<Map<string, Org>>;
}

/** Where the worker borrows tenant connections: a `TenantPools` fits. */
export interface ConnectionLender {
  /** A connection lent without waiting for a slot, or null when the pool cannot lend now. */
  tryAcquire(org: Org): Promise<TenantConnection | null> | TenantConnection | null;
}

/** What a worker runs on. */
export interface FleetWorkerDeps {
  engine: QueueEngine;
  orgs: OrgSource;
  /** Required when `borrowConnection` is on. */
  pools?: ConnectionLender | undefined;
  logger?: Logger;
}

/** Options of {@link FleetWorker.close}. */
export interface CloseOptions {
  /** How long running jobs may take to finish before they are aborted. @default the worker's `shutdownTimeoutMs` */
  timeoutMs?: number;
}

/** The events of a {@link FleetWorker}, one payload object each. */
export interface FleetWorkerEventMap {
  'job:active': [{ job: ActiveJob; tenant: Org }];
  'job:completed': [{ job: ActiveJob; result: unknown; durationMs: number }];
  /** The attempt failed and the engine will run the job again after its backoff. */
  'job:retrying': [{ job: ActiveJob; error: Error }];
  /** The job failed for good: attempts exhausted or an `UnrecoverableError`. */
  'job:failed': [{ job: ActiveJob; error: Error; unrecoverable: boolean }];
  /** The job was aborted and left for the engine to hand out again. */
  'job:aborted': [{ job: ActiveJob; reason: 'shutdown' | 'lock-lost' }];
  /** A tenant with jobs is not served: deactivated or unknown to the registry. */
  'tenant:skipped': [{ tenant: string; reason: 'inactive' | 'unknown' | 'error' }];
  /** Something failed that the worker survives (an engine call, a registry read). */
  error: [{ error: Error; during: string }];
  /** `close()` has finished. */
  closed: [];
}

/** A job a worker is running (internal to the worker). */
export interface RunningJob {
  /** The job's key in the worker's map (running-jobs.ts jobKey). */
  readonly key: string;
  readonly job: ActiveJob;
  /** Made on first use (most handlers never read `ctx.signal`): see running-jobs.ts signalOf. */
  controller: AbortController | undefined;
  db: TenantConnection | undefined;
  /** close() gave up waiting, or the lock was lost: the connection is back, the job no longer ours. */
  abandoned: boolean;
}

/** A slot's turn with one tenant (internal to the worker): see `jobsPerTurn`. */
export interface Turn {
  /** The tenant's org, read again before each further job of the turn. */
  org: Org;
  /**
   * The connection of the turn's current job. Each job gives its connection back and the
   * next one borrows again, so that every job starts from a fresh checkout.
   */
  db: TenantConnection | undefined;
  /** Jobs started in this turn so far. */
  served: number;
  /** The job the turn starts with. */
  first: ActiveJob;
  /**
   * The picker's stamp (FairPicker.stamp) taken before its current job was asked for: a
   * job taken as its partition's last (`lastReady`) marks the tenant empty as of then, so
   * news of jobs asked for later keeps it ready, and news asked for earlier does not.
   */
  takenAsOf: number;
  /**
   * Set when the turn ended by handing the slot on: the next tenant's turn, or null. Taken
   * off again as the worker moves on to that turn: were turns linked each to the next, one
   * stale reference to an old turn would hold every turn since, each with its first job. V8
   * leaves one in an optimised slot loop's suspended frame, which under a backlog that never
   * runs dry (every turn handing on) grew the heap by a turn and its job per turn.
   */
  handedOn: Turn | null | undefined;
}
