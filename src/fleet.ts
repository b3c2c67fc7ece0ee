import { type FleetOptions, type ResolvedFleetOptions, resolveFleetOptions } from './fleet-options.js';
import { BullMqEngine } from './queue/bullmq/bullmq-engine.js';
import type {
  BatchProgress,
  EngineName,
  EnqueueJob,
  EnqueueOutcome,
  JobCounts,
  JobInfo,
  QueueEngine,
} from './queue/engine.js';
import { checkQueueName, checkTenant, normaliseJob } from './queue/job-input.js';
import { MemoryEngine } from './queue/memory/memory-engine.js';
import { PgBossEngine } from './queue/pgboss/pgboss-engine.js';
import { ClosedError, describe, TenantInactiveError, ValidationError } from './reporting/errors.js';
import type { Logger } from './reporting/logger.js';
import { Scheduler, type SchedulerOptions } from './scheduler/scheduler.js';
import { OrgRegistry } from './tenancy/registry/org-registry.js';
import { TenantPools } from './tenancy/tenant-pools/tenant-pools.js';
import { FleetWorker } from './worker/fleet-worker.js';
import type { JobHandler } from './worker/job-context.js';
import type { FleetWorkerOptions } from './worker/worker-options.js';

/** One job to enqueue: its tenant, name, data and options. */
export type FleetJob<Data = unknown> = EnqueueJob<Data>;

/**
 * The fleet: one queue engine, the org registry and the tenant pools, wired together.
 * It checks tenants at enqueue (a job of an unknown or deactivated tenant is refused,
 * never stored) and makes the workers that pull fairly across tenants.
 *
 * ```ts
 * await using fleet = await Fleet.open({ redis: 'redis://127.0.0.1:6379', registry, pools });
 * await fleet.enqueue('reports', { tenant: 'acme', name: 'render', data: { id: 7 } });
 * fleet.worker('reports', async (job, ctx) => ctx.db!.query('select 1'));
 * ```
 */
export class Fleet implements AsyncDisposable {
  /** The queue engine. */
  readonly engine: QueueEngine;
  /** The org registry enqueue checks tenants against. */
  readonly registry: OrgRegistry;
  /** The tenant pools workers borrow `ctx.db` from, if any. */
  readonly pools: TenantPools | undefined;
  readonly logger: Logger;
  readonly maxDataBytes: number;

  readonly #workers = new Set<FleetWorker<never, unknown>>();
  readonly #ownsRegistry: boolean;
  readonly #ownsPools: boolean;
  #closed: Promise<void> | undefined;

  private constructor(
    engine: QueueEngine,
    registry: OrgRegistry,
    ownsRegistry: boolean,
    pools: TenantPools | undefined,
    ownsPools: boolean,
    logger: Logger,
    maxDataBytes: number,
  ) {
    this.engine = engine;
    this.registry = registry;
    this.#ownsRegistry = ownsRegistry;
    this.pools = pools;
    this.#ownsPools = ownsPools;
    this.logger = logger;
    this.maxDataBytes = maxDataBytes;
  }

  /**
   * Opens the engine, and the registry and pools when given their URL or options.
   * {@link ConfigError} on bad options; whatever was opened is closed again on failure.
   */
  static async open(options: FleetOptions): Promise<Fleet> {
    const resolved = resolveFleetOptions(options);
    const logger = resolved.logger;
    const ownsRegistry = typeof resolved.registry === 'string';
    const ownsPools = resolved.pools !== undefined && !(resolved.pools instanceof TenantPools);
    let registry: OrgRegistry | undefined;
    let pools: TenantPools | undefined;
    try {
      registry =
        typeof resolved.registry === 'string'
          ? await OrgRegistry.open(resolved.registry, { logger })
          : resolved.registry;
      pools =
        resolved.pools === undefined || resolved.pools instanceof TenantPools
          ? resolved.pools
          : await TenantPools.open({ logger, ...resolved.pools, registry });
      const engine =
        typeof resolved.engine === 'object' ? resolved.engine : openEngine(resolved.engine, resolved);
      return new Fleet(engine, registry, ownsRegistry, pools, ownsPools, logger, resolved.maxDataBytes);
    } catch (error) {
      if (ownsPools) await pools?.close().catch(() => {});
      if (ownsRegistry) await registry?.close().catch(() => {});
      throw error;
    }
  }

  /**
   * Adds one job to the tenant's partition of `queue`; resolves to its id. Throws
   * `UnknownTenantError` / `TenantInactiveError` for a tenant that cannot run jobs, and
   * `ValidationError` for bad input (`data` not JSON or over `maxDataBytes`, a bad name,
   * queue or option).
   */
  async enqueue<Data>(queue: string, job: FleetJob<Data>): Promise<string> {
    const [id] = await this.enqueueBulk(queue, [job]);
    return id!;
  }

  /**
   * Adds many jobs in as few round trips as the engine allows; ids in order. Every job is
   * checked first: if any is bad, none is written.
   */
  async enqueueBulk<Data>(queue: string, jobs: readonly FleetJob<Data>[]): Promise<string[]> {
    return (await this.enqueueCounted(queue, jobs)).ids;
  }

  /** {@link enqueueBulk}, also saying how many jobs were new (an id already there is not added again). */
  async enqueueCounted<Data>(queue: string, jobs: readonly FleetJob<Data>[]): Promise<EnqueueOutcome> {
    this.#checkOpen();
    checkQueueName(queue);
    if (!Array.isArray(jobs))
      throw new ValidationError('jobs', `Expected an array of jobs, got ${describe(jobs)}`);
    if (jobs.length === 0) return { ids: [], added: 0 };
    const tenants = new Set<string>();
    jobs.forEach((job, index) => {
      try {
        tenants.add(normaliseJob(job, this.maxDataBytes).tenant);
      } catch (error) {
        if (!(error instanceof ValidationError) || jobs.length === 1) throw error;
        throw new ValidationError(error.field, `Job ${index} of ${jobs.length}: ${error.message}`, {
          cause: error,
        });
      }
    });
    await Promise.all([...tenants].map((slug) => this.#checkTenant(slug)));
    return this.engine.enqueueCounted(queue, jobs);
  }

  /**
   * Makes a worker for `queue` that runs `handler` for each job with a {@link JobContext}
   * (the tenant's org, a borrowed connection to its data, an abort signal). It starts at
   * once unless `autorun: false`; `fleet.close()` closes it.
   */
  worker<Data = unknown, Result = unknown>(
    queue: string,
    handler: JobHandler<Data, Result>,
    options: FleetWorkerOptions = {},
  ): FleetWorker<Data, Result> {
    this.#checkOpen();
    checkQueueName(queue);
    const worker = new FleetWorker<Data, Result>(
      { engine: this.engine, orgs: this.registry, pools: this.pools, logger: this.logger },
      queue,
      handler,
      options,
    );
    const tracked = worker as unknown as FleetWorker<never, unknown>;
    this.#workers.add(tracked);
    worker.once('closed', () => this.#workers.delete(tracked));
    return worker;
  }

  /** Job counts of one tenant's partition of `queue`. */
  counts(queue: string, tenant: string): Promise<JobCounts> {
    this.#checkOpen();
    return this.engine.counts(checkQueueName(queue), checkTenant(tenant));
  }

  /** One job of a tenant's partition, or null (unknown, or trimmed after finishing). */
  job(queue: string, tenant: string, id: string): Promise<JobInfo | null> {
    this.#checkOpen();
    return this.engine.getJob(checkQueueName(queue), checkTenant(tenant), id);
  }

  /** Progress of the jobs enqueued with this `batchId` (a scheduler fan-out). */
  batch(batchId: string): Promise<BatchProgress> {
    this.#checkOpen();
    return this.engine.batchProgress(batchId);
  }

  /**
   * A {@link Scheduler} that fans jobs out to this fleet's active tenants on cron
   * schedules (`scheduler.fanOut({ id, cron, queue, name, data })`). Close it before the fleet.
   */
  scheduler(options: SchedulerOptions = {}): Scheduler {
    this.#checkOpen();
    return new Scheduler(this, options);
  }

  /**
   * Closes the workers this fleet made (each with its own shutdown deadline), then the
   * engine, then the pools and the registry if the fleet opened them. Pools and a
   * registry given to the fleet stay open: whoever made them closes them. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['workers', () => Promise.all([...this.#workers].map((worker) => worker.close()))],
      ['engine', () => this.engine.close()],
    ];
    if (this.#ownsPools && this.pools) {
      const pools = this.pools;
      steps.push(['pools', () => pools.close()]);
    }
    if (this.#ownsRegistry) steps.push(['registry', () => this.registry.close()]);
    for (const [step, run] of steps) {
      try {
        await run();
      } catch (error) {
        this.logger.error({ err: error, step }, 'fleet close step failed');
      }
    }
  }

  async #checkTenant(slug: string): Promise<void> {
    const org = await this.registry.get(slug);
    if (!org.active) throw new TenantInactiveError(slug);
  }

  #checkOpen(): void {
    if (this.#closed !== undefined) throw new ClosedError('Fleet');
  }
}

function openEngine(engine: EngineName, options: ResolvedFleetOptions): QueueEngine {
  if (engine === 'memory') return new MemoryEngine();
  // resolveFleetOptions has checked that pgboss comes with `database`, bullmq with `redis`.
  if (engine === 'pgboss') return new PgBossEngine({ database: options.database! });
  return new BullMqEngine({ connection: options.redis!, prefix: options.prefix, shards: options.shards });
}
