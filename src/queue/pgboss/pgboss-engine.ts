/**
 * The Postgres engine, on pg-boss's schema: pg-boss creates and migrates its tables,
 * each logical queue is a pg-boss queue (created with pg-boss's own `createQueue`), and
 * each job is a row of pg-boss's `job` table whose `singleton_key` is the tenant, so
 * pg-boss's API and whatever reads its tables see every job. What pg-boss has no place
 * for lives in columns and tables the engine adds (schema.ts).
 *
 * Why pg-boss's tables with the engine's own claim rather than pg-boss's fetch: pg-boss
 * 10 has no per-tenant partitions of a queue. A pg-boss queue per tenant is a table per
 * tenant (pg-boss 10 partitions `job` by queue; `createQueue` took 17–23 ms each here,
 * so 10,000 tenants would be minutes and 10,000 tables), each polled on its own. Groups
 * need pg-boss 12 (Node ≥ 22), are soft under races and pick by priority then age, not by
 * tenant. So the claim is the engine's: ready rows of one tenant taken with `FOR UPDATE
 * SKIP LOCKED` through a partial index on (queue, tenant, priority, order); for a capped
 * tenant the partition's row is locked first and its active jobs counted under that lock,
 * so the cap never overshoots.
 *
 * Completions and claims are coalesced (settle-batcher.ts): the calls of a queue that
 * arrive while a statement is in flight share the next one, so a busy worker pays one
 * round trip and one commit per batch, as raw pg-boss does with `fetch({ batchSize })` +
 * `complete(ids)`. One commit per job was what held the first version to a third of raw
 * pg-boss's throughput (docs/BENCHMARKS.md). Readiness wakes through LISTEN/NOTIFY
 * (wake-listener.ts), not polling. A batch of caps is one statement too (cap-writer.ts).
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type PgBoss from 'pg-boss';
import { ClosedError, DatabaseConnectionError, redactUrl } from '../../reporting/errors.js';
import { runCloseSteps } from '../close-steps.js';
import type {
  ActiveJob,
  BatchProgress,
  CompleteOptions,
  EnqueueJob,
  EnqueueOutcome,
  FailOutcome,
  JobCounts,
  JobInfo,
  QueueEngine,
} from '../engine.js';
import { getOrCreate } from '../get-or-create.js';
import {
  checkCaps,
  checkJobId,
  checkLockDuration,
  checkQueueName,
  checkTenant,
  normaliseJobs,
  serialiseResult,
} from '../job-input.js';
import { CapWriter } from './cap-writer.js';
import { insertJobs } from './enqueue.js';
import {
  type PgBossEngineOptions,
  type ResolvedPgBossEngineOptions,
  resolvePgBossEngineOptions,
} from './options.js';
import {
  type ClaimedRow,
  candidateUuids,
  type JobRow,
  type PgBossLease,
  toActiveJob,
  toJobInfo,
} from './rows.js';
import { isConnectionError, startBossSchema, wakeChannel } from './schema.js';
import { SettleBatcher } from './settle-batcher.js';
import {
  batchSql,
  countsSql,
  extendSql,
  getJobSql,
  nextDueSql,
  purgeSql,
  purgeTenantSql,
  readyTenantsSql,
  recoverSql,
} from './statements.js';
import { listenClient, WakeListener } from './wake-listener.js';

export type { PgBossEngineOptions, ResolvedPgBossEngineOptions } from './options.js';

/** Events of {@link PgBossEngine}. */
export interface PgBossEngineEventMap {
  /** A Postgres error outside any call (e.g. a dropped idle connection); the engine carries on. */
  'pg:error': [{ error: Error }];
}

/** A {@link QueueEngine} on Postgres, in a pg-boss schema. */
export class PgBossEngine extends EventEmitter<PgBossEngineEventMap> implements QueueEngine {
  readonly name = 'pgboss' as const;
  readonly options: ResolvedPgBossEngineOptions;

  readonly #pool: pg.Pool;
  readonly #listener: WakeListener;
  readonly #s: string;
  readonly #queues = new Map<string, Promise<void>>();
  readonly #settlers = new Map<string, SettleBatcher>();
  readonly #caps: CapWriter;
  #boss: PgBoss | null = null;
  #ready: Promise<void> | null = null;
  #closePromise: Promise<void> | null = null;

  constructor(options: PgBossEngineOptions) {
    super();
    this.options = resolvePgBossEngineOptions(options);
    const { database, maxConnections, applicationName, schema } = this.options;
    this.#s = schema;
    const onError = (error: Error): void => {
      error.message = redactUrl(error.message);
      this.emit('pg:error', { error });
    };
    this.#pool = new pg.Pool({
      connectionString: database,
      max: maxConnections,
      application_name: applicationName,
    });
    this.#pool.on('error', onError);
    this.#caps = new CapWriter(this.#pool, schema, wakeChannel(schema));
    this.#listener = new WakeListener(async () => {
      await this.#init();
      return listenClient(database, `${applicationName}:listen`, wakeChannel(schema));
    }, onError);
  }

  /** The pg-boss instance on this engine's schema and pool (no workers, no maintenance). */
  async boss(): Promise<PgBoss> {
    this.#checkOpen();
    await this.#init();
    return this.#boss!;
  }

  async enqueue<Data>(queue: string, job: EnqueueJob<Data>): Promise<string> {
    return (await this.enqueueCounted(queue, [job])).ids[0]!;
  }

  async enqueueBulk<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<string[]> {
    return (await this.enqueueCounted(queue, jobs)).ids;
  }

  /** Inserts in statements of up to 1,000 jobs, each with its partitions, batches and wake-up. */
  async enqueueCounted<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<EnqueueOutcome> {
    this.#checkOpen();
    const normalised = normaliseJobs(queue, jobs, this.options.maxDataBytes);
    if (normalised.length === 0) return { ids: [], added: 0 };
    await this.#queue(queue);
    return insertJobs(this.#pool, this.#s, queue, normalised);
  }

  async readyTenants(queue: string): Promise<string[]> {
    this.#checkOpen();
    checkQueueName(queue);
    await this.#init();
    const result = await this.#pool.query<{ tenant: string }>(readyTenantsSql(this.#s), [queue]);
    return result.rows.map((row) => row.tenant);
  }

  async waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.#checkOpen();
    checkQueueName(queue);
    return this.#listener.wait(
      queue,
      timeoutMs,
      async (...args) => {
        const result = await this.#pool.query<{ due_ms: number }>(nextDueSql(this.#s), [queue, ...args]);
        return result.rows.length === 0 ? null : Math.ceil(result.rows[0]!.due_ms);
      },
      signal,
    );
  }

  /** One job, claimed in the next `fleet_settle` call of the queue (shared with other callers). */
  async fetch(queue: string, tenant: string, _workerId: string, lockMs: number): Promise<ActiveJob | null> {
    this.#checkOpen();
    checkQueueName(queue);
    checkTenant(tenant);
    checkLockDuration(lockMs);
    await this.#init();
    const row = await this.#settler(queue).claim(tenant, lockMs);
    return row === null ? null : toActiveJob(queue, tenant, row);
  }

  /**
   * Takes up to `max` ready jobs of one partition at once (within its cap), each locked
   * as `fetch` would lock it: a batch fetch, in one round trip.
   */
  async fetchMany(
    queue: string,
    tenant: string,
    _worker: string,
    lockMs: number,
    max: number,
  ): Promise<ActiveJob[]> {
    this.#checkOpen();
    checkQueueName(queue);
    checkTenant(tenant);
    checkLockDuration(lockMs);
    await this.#init();
    const result = await this.#pool.query<ClaimedRow>(
      `SELECT * FROM ${this.#s}.fleet_claim($1, $2, $3, $4)`,
      [queue, tenant, max, lockMs],
    );
    return result.rows.map((row) => toActiveJob(queue, tenant, row));
  }

  /**
   * Completes in the queue's next `fleet_settle` call, with the next job's claim (if
   * asked) in the same call, so it sees the room the completion made under a cap.
   */
  async complete(job: ActiveJob, result: unknown, options: CompleteOptions = {}): Promise<ActiveJob | null> {
    this.#checkOpen();
    const next = options.fetchNext;
    if (next !== undefined) checkLockDuration(next.lockDurationMs);
    // The next job may be of another tenant's partition (the worker hands its turn on).
    const nextTenant = next?.tenant === undefined ? job.tenant : checkTenant(next.tenant);
    const output = serialiseResult(result);
    const lease = job.lease as PgBossLease;
    const settler = this.#settler(job.queue);
    const completed = settler.complete(lease.uuid, lease.token, output);
    if (next === undefined) {
      await completed;
      return null;
    }
    const claimed = settler.claim(nextTenant, next.lockDurationMs);
    // Both settle with one statement; wait for both so neither rejection goes unheard.
    const [, row] = await Promise.all([completed, claimed]);
    return row === null ? null : toActiveJob(job.queue, nextTenant, row);
  }

  async fail(job: ActiveJob, error: Error, options: { unrecoverable?: boolean } = {}): Promise<FailOutcome> {
    this.#checkOpen();
    const lease = job.lease as PgBossLease;
    const err = JSON.stringify({ message: String(error?.message ?? error), stack: error?.stack ?? null });
    const result = await this.#pool.query<{ outcome: string }>(
      `SELECT ${this.#s}.fleet_finish($1, $2, $3, $4, false, NULL, $5, $6, $7, $8) AS outcome`,
      [
        job.queue,
        job.tenant,
        lease.uuid,
        lease.token,
        err,
        options.unrecoverable === true,
        this.options.keepCompleted,
        this.options.keepFailed,
      ],
    );
    // Lost lock: the job is (or will be) handed out again, so it is in effect retrying.
    return result.rows[0]!.outcome === 'failed' ? 'failed' : 'retrying';
  }

  async extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]> {
    this.#checkOpen();
    checkLockDuration(lockDurationMs);
    if (jobs.length === 0) return [];
    const leases = jobs.map((job) => job.lease as PgBossLease);
    const result = await this.#pool.query<{ id: string }>(extendSql(this.#s), [
      jobs.map((job) => job.queue),
      leases.map((lease) => lease.uuid),
      leases.map((lease) => lease.token),
      lockDurationMs,
    ]);
    const kept = new Set(result.rows.map((row) => row.id));
    return jobs.filter((_, i) => !kept.has(leases[i]!.uuid)).map((job) => job.id);
  }

  async recoverStalled(queue: string): Promise<number> {
    this.#checkOpen();
    checkQueueName(queue);
    await this.#init();
    const values = [queue, this.options.maxStalledCount];
    return (await this.#pool.query<{ moved: number }>(recoverSql(this.#s), values)).rows[0]!.moved;
  }

  async setTenantConcurrency(queue: string, tenant: string, max: number | null): Promise<void> {
    return this.setTenantConcurrencies(queue, new Map([[tenant, max]]));
  }

  async setTenantConcurrencies(queue: string, caps: ReadonlyMap<string, number | null>): Promise<void> {
    this.#checkOpen();
    checkQueueName(queue);
    const checked = checkCaps(caps);
    await this.#init();
    await this.#caps.set(queue, checked);
  }

  async counts(queue: string, tenant: string): Promise<JobCounts> {
    this.#checkOpen();
    checkQueueName(queue);
    checkTenant(tenant);
    await this.#init();
    const result = await this.#pool.query<JobCounts>(countsSql(this.#s), [queue, tenant]);
    return { ...result.rows[0]! };
  }

  async getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null> {
    this.#checkOpen();
    checkQueueName(queue);
    checkTenant(tenant);
    checkJobId(id);
    await this.#init();
    const result = await this.#pool.query<JobRow>(getJobSql(this.#s), [
      queue,
      tenant,
      candidateUuids(tenant, id),
      id,
      this.options.keepCompleted,
      this.options.keepFailed,
    ]);
    const row = result.rows[0];
    return row ? toJobInfo(queue, tenant, row) : null;
  }

  async batchProgress(batchId: string): Promise<BatchProgress> {
    this.#checkOpen();
    await this.#init();
    const result = await this.#pool.query<Omit<BatchProgress, 'pending'>>(batchSql(this.#s), [batchId]);
    const batch = result.rows[0] ?? { total: 0, completed: 0, failed: 0 };
    return { ...batch, pending: batch.total - batch.completed - batch.failed };
  }

  async purge(queue: string, tenant?: string): Promise<string[]> {
    this.#checkOpen();
    checkQueueName(queue);
    if (tenant !== undefined) checkTenant(tenant);
    await this.#init();
    const result = await this.#pool.query<{ tenant: string }>(purgeSql(this.#s), [queue, tenant ?? null]);
    return result.rows.map((row) => row.tenant);
  }

  /** Removes a tenant's partitions of every queue (a removed org); resolves to the queues, sorted. */
  async purgeTenant(tenant: string): Promise<string[]> {
    this.#checkOpen();
    checkTenant(tenant);
    await this.#init();
    const result = await this.#pool.query<{ queue: string }>(purgeTenantSql(this.#s), [tenant]);
    return result.rows.map((row) => row.queue);
  }

  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      const steps = [
        // Calls already made (completions above all) go out before the pool ends.
        () => Promise.all([this.#caps.drain(), ...[...this.#settlers.values()].map((s) => s.drain())]),
        () => this.#listener.close(),
        async () => this.#boss?.stop({ close: false, graceful: false, wait: true }),
        () => this.#pool.end(),
      ];
      await runCloseSteps(steps, this.options.closeTimeoutMs, (error) => this.emit('pg:error', { error }));
    })();
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkOpen(): void {
    if (this.#closePromise) throw new ClosedError('PgBossEngine');
  }

  /**
   * Lets pg-boss create (or migrate) its schema, then adds the engine's part; cached, and
   * cleared on failure so the next call retries. A database that cannot be reached is a
   * {@link DatabaseConnectionError}.
   */
  #init(): Promise<void> {
    this.#ready ??= (async () => {
      this.#boss = await startBossSchema(this.#pool, this.#s, (error) => this.emit('pg:error', { error }));
    })().catch((error) => {
      if (isConnectionError(error))
        error = new DatabaseConnectionError('queue', this.options.database, error);
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  /** The batcher of a queue's completions and claims. */
  #settler(queue: string): SettleBatcher {
    const { keepCompleted } = this.options;
    return getOrCreate(
      this.#settlers,
      queue,
      () => new SettleBatcher({ pool: this.#pool, schema: this.#s, queue, keepCompleted }),
    );
  }

  /** Creates the pg-boss queue behind a logical queue once per engine (pg-boss skips an existing one). */
  #queue(queue: string): Promise<void> {
    return getOrCreate(this.#queues, queue, () =>
      (async () => {
        await this.#init();
        await this.#boss!.createQueue(queue, { name: queue, policy: 'standard' });
      })().catch((error) => {
        this.#queues.delete(queue);
        throw error;
      }),
    );
  }
}
