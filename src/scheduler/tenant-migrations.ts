/**
 * Tenant migrations, the flagship fan-out: a directory of numbered SQL files runs on every
 * active tenant, each tenant in its own job (so the fleet's fairness, per-tenant caps and
 * connection budget apply) with its own connection from TenantPools. Applied versions are
 * recorded per tenant (see apply-migrations.ts), so a rerun applies only what is new; a
 * tenant whose migration fails is reported with its error and the others go on.
 */
import { randomBytes } from 'node:crypto';
import type { BatchProgress, JobInfo } from '../queue/engine.js';
import {
  ConfigError,
  describe,
  SecretResolutionError,
  TenantConnectionError,
  TenantUnavailableError,
} from '../reporting/errors.js';
import {
  applyMigrations,
  type MigrationConnection,
  type TenantMigrationOutcome,
} from './apply-migrations.js';
import { type FanOutTarget, fanOutJobId, fanOutTick } from './fan-out.js';
import { loadMigrations, type Migration } from './migration-files.js';

/** The job a migration worker gets (a fleet `ActiveJob` fits). */
export interface MigrationJobView {
  readonly id: string;
  readonly tenant: string;
  readonly data: unknown;
}

/** What a migration job handler needs of its context (a fleet `JobContext` fits). */
export interface MigrationContextView {
  readonly db: MigrationConnection | undefined;
}

/** What migrating needs of a fleet (a `Fleet` fits). */
export interface MigrationFleet extends FanOutTarget {
  worker(
    queue: string,
    handler: (job: MigrationJobView, ctx: MigrationContextView) => Promise<unknown>,
    options?: { concurrency?: number; perTenantConcurrency?: number; borrowConnection?: boolean },
  ): { close(): Promise<void> };
  batch(batchId: string): Promise<BatchProgress>;
  /** Read to report jobs this process did not run itself (another worker, or no connection). */
  readonly engine?: { getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null> };
  /** Checked before the fan-out: a tenant that cannot lend a connection fails at once (a `TenantPools` fits). */
  readonly pools?: { acquire(slug: string): Promise<{ release(): void }> } | undefined;
}

/** Options of {@link migrateTenants}. */
export interface MigrateTenantsOptions {
  /** The directory of numbered `.sql` files; or give `migrations` already loaded. */
  dir?: string;
  migrations?: readonly Migration[];
  /** The queue migration jobs go through. @default 'fleet-migrations' */
  queue?: string;
  /** Tenants migrated at once by this process. @default 4 */
  concurrency?: number;
  /** Tenants read and enqueued per page. @default 500 */
  pageSize?: number;
  /** How often batch progress is read. @default 200 */
  pollIntervalMs?: number;
  /**
   * Stop waiting when the batch has made no progress for this long. A tenant that cannot
   * lend a connection when the run starts gets no job and is reported failed at once, with
   * the cause; this bound is for one lost later: the workers skip such a tenant rather
   * than fail it, so its job would wait forever. It is reported as failed with
   * `version: null`; its job stays queued (applying is idempotent, and a later run
   * reports what that job applied).
   * @default 120_000
   */
  stallTimeoutMs?: number;
  /** Called whenever the batch's progress changes. */
  onProgress?: (progress: BatchProgress) => void;
  /** Stops waiting (the jobs already enqueued stay). */
  signal?: AbortSignal;
}

/** {@link MigrateTenantsOptions} with the defaults filled in. */
export interface ResolvedMigrateTenantsOptions {
  migrations: readonly Migration[];
  queue: string;
  concurrency: number;
  pageSize: number;
  pollIntervalMs: number;
  stallTimeoutMs: number;
  onProgress: ((progress: BatchProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

const DEFAULTS = {
  queue: 'fleet-migrations',
  concurrency: 4,
  pageSize: 500,
  pollIntervalMs: 200,
  stallTimeoutMs: 120_000,
} satisfies Partial<ResolvedMigrateTenantsOptions>;

/** Validates {@link MigrateTenantsOptions}, loads `dir`, fills in the defaults. */
export function resolveMigrateTenantsOptions(options: MigrateTenantsOptions): ResolvedMigrateTenantsOptions {
  if (!options.migrations && !options.dir) {
    throw new ConfigError(
      'dir',
      'Expected `dir` (a directory of numbered .sql files) or `migrations`, got neither',
    );
  }
  const integer = (option: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) {
      throw new ConfigError(
        option,
        `Expected \`${option}\` to be an integer ≥ ${min}, got ${describe(value)}`,
      );
    }
    return value;
  };
  return {
    migrations: options.migrations ?? loadMigrations(options.dir as string),
    queue: options.queue ?? DEFAULTS.queue,
    concurrency: integer('concurrency', options.concurrency ?? DEFAULTS.concurrency, 1),
    pageSize: integer('pageSize', options.pageSize ?? DEFAULTS.pageSize, 1),
    pollIntervalMs: integer('pollIntervalMs', options.pollIntervalMs ?? DEFAULTS.pollIntervalMs, 1),
    stallTimeoutMs: integer('stallTimeoutMs', options.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs, 1),
    onProgress: options.onProgress,
    signal: options.signal,
  };
}

/** One tenant whose migration failed. */
export interface TenantMigrationFailure {
  tenant: string;
  /** The version that failed, or null when the job failed before running any (no connection…). */
  version: number | null;
  /** The error's message (URL passwords redacted by the drivers). */
  error: string;
}

/** What a migration run did across the fleet. */
export interface MigrationReport {
  batchId: string;
  /** The versions the directory holds. */
  versions: number[];
  /** Tenants that got at least one new version, with the versions applied. */
  migrated: { tenant: string; applied: number[] }[];
  /** Tenants that already had every version. */
  upToDate: string[];
  failed: TenantMigrationFailure[];
  /** Tenants with an applied file that has changed since it ran (not run again). */
  changed: { tenant: string; versions: number[] }[];
  /** The batch's final counts. */
  progress: BatchProgress;
}

interface JobData {
  migrations: Migration[];
}

type Result = { outcome: TenantMigrationOutcome } | { failure: TenantMigrationFailure };

/**
 * Runs the migrations on every active tenant and resolves when every tenant's job has
 * completed or failed. This process runs a worker on `queue` for the duration; the jobs
 * carry the scripts, so a job picked up by another process's migration worker runs the
 * same files.
 */
export async function migrateTenants(
  fleet: MigrationFleet,
  options: MigrateTenantsOptions,
): Promise<MigrationReport> {
  const resolved = resolveMigrateTenantsOptions(options);
  const results = new Map<string, Result>();
  const runId = `migrate-${randomBytes(4).toString('hex')}`;
  const tick = new Date();
  // This run's jobs only: the worker also takes jobs an earlier run left queued, and
  // those must not overwrite what this run's own job found.
  const ownJob = (job: MigrationJobView) => job.id === fanOutJobId(runId, tick, job.tenant);
  const record = (job: MigrationJobView, result: Result) => {
    if (ownJob(job)) results.set(job.tenant, result);
  };
  const worker = fleet.worker(
    resolved.queue,
    async (job, ctx) => {
      if (!ctx.db)
        throw new ConfigError(
          'borrowConnection',
          'Expected a migration worker that borrows connections, got none',
        );
      const { migrations } = job.data as JobData;
      try {
        // What the tenant's fleet_migrations says went in since this run began, whoever
        // applied it (an earlier run's job may run first, here or elsewhere).
        const outcome = await applyMigrations(ctx.db, migrations, tick.getTime());
        record(job, { outcome });
        return outcome;
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        const version = (err as { version?: unknown }).version;
        record(job, {
          failure: {
            tenant: job.tenant,
            version: typeof version === 'number' ? version : null,
            error: error.message,
          },
        });
        throw error;
      }
    },
    { concurrency: resolved.concurrency, perTenantConcurrency: 1, borrowConnection: true },
  );
  try {
    // A tenant that cannot lend a connection gets no job: its job would only wait (the
    // workers skip it) and, left queued, run unreported after the operator fixed it.
    const unreachable = await probeTenants(fleet, resolved, results);
    const fanOut = await fanOutTick(
      fleet,
      runId,
      {
        queue: resolved.queue,
        name: 'migrate',
        data: { migrations: [...resolved.migrations] } satisfies JobData,
        jobOptions: { attempts: 1 },
      },
      tick,
      resolved.pageSize,
      resolved.signal,
      unreachable,
    );
    const progress = await waitForBatch(fleet, fanOut.batchId, fanOut.enqueued, resolved);
    if (results.size < fanOut.enqueued + unreachable.size)
      await fillFromJobs(fleet, resolved, results, (slug) => fanOutJobId(runId, tick, slug));
    return buildReport(fanOut.batchId, resolved.migrations, results, progress);
  } finally {
    await worker.close();
  }
}

/** Tenant errors that mean its database or secret is out of reach, not merely busy. */
function isUnreachable(err: unknown): err is Error {
  return (
    err instanceof TenantConnectionError ||
    err instanceof SecretResolutionError ||
    err instanceof TenantUnavailableError
  );
}

// Borrows and gives back one connection per active tenant, `concurrency` at once. A
// tenant whose connection cannot be opened (a refused host, a missing secret, an open
// breaker) is recorded as failed with the cause; a busy one is left to its job.
async function probeTenants(
  fleet: MigrationFleet,
  options: ResolvedMigrateTenantsOptions,
  results: Map<string, Result>,
): Promise<Set<string>> {
  const unreachable = new Set<string>();
  const pools = fleet.pools;
  if (!pools) return unreachable;
  let after: string | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const orgs = await fleet.registry.list({
      active: true,
      limit: options.pageSize,
      ...(after ? { after } : {}),
    });
    const slugs = orgs.map((org) => org.slug);
    const probe = async () => {
      for (let slug = slugs.shift(); slug !== undefined; slug = slugs.shift()) {
        try {
          (await pools.acquire(slug)).release();
        } catch (err) {
          if (!isUnreachable(err)) continue;
          unreachable.add(slug);
          results.set(slug, { failure: { tenant: slug, version: null, error: `not run: ${err.message}` } });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, slugs.length) }, probe));
    if (orgs.length < options.pageSize) return unreachable;
    after = orgs[orgs.length - 1]!.slug;
  }
}

async function waitForBatch(
  fleet: MigrationFleet,
  batchId: string,
  expected: number,
  options: ResolvedMigrateTenantsOptions,
): Promise<BatchProgress> {
  let last = '';
  let changedAt = Date.now();
  for (;;) {
    options.signal?.throwIfAborted();
    const progress = await fleet.batch(batchId);
    const key = JSON.stringify(progress);
    if (key !== last) {
      last = key;
      changedAt = Date.now();
      options.onProgress?.(progress);
    }
    if (progress.total >= expected && progress.pending === 0) return progress;
    if (Date.now() - changedAt >= options.stallTimeoutMs) return progress;
    await new Promise((resolve) => setTimeout(resolve, options.pollIntervalMs));
  }
}

// Jobs this process did not run itself: a tenant whose connection could not be opened
// fails before the handler runs; another process's migration worker may have taken some.
async function fillFromJobs(
  fleet: MigrationFleet,
  options: ResolvedMigrateTenantsOptions,
  results: Map<string, Result>,
  jobIdOf: (slug: string) => string,
): Promise<void> {
  let after: string | undefined;
  for (;;) {
    const orgs = await fleet.registry.list({
      active: true,
      limit: options.pageSize,
      ...(after ? { after } : {}),
    });
    for (const org of orgs) {
      if (results.has(org.slug)) continue;
      const job = await fleet.engine?.getJob(options.queue, org.slug, jobIdOf(org.slug));
      if (!job) continue;
      if (job.state === 'completed') {
        if (job.result && typeof job.result === 'object') {
          results.set(org.slug, { outcome: job.result as TenantMigrationOutcome });
        }
      } else if (job.state === 'failed') {
        const version = /^Migration (\d+)_/.exec(job.error?.message ?? '')?.[1];
        results.set(org.slug, {
          failure: {
            tenant: org.slug,
            version: version === undefined ? null : Number(version),
            error: job.error?.message ?? 'failed without a message',
          },
        });
      } else {
        results.set(org.slug, {
          failure: {
            tenant: org.slug,
            version: null,
            error: `not run: its job was still ${job.state} after ${options.stallTimeoutMs} ms without progress (is the tenant's database reachable?)`,
          },
        });
      }
    }
    if (orgs.length < options.pageSize) return;
    after = orgs[orgs.length - 1]!.slug;
  }
}

function buildReport(
  batchId: string,
  migrations: readonly Migration[],
  results: Map<string, Result>,
  progress: BatchProgress,
): MigrationReport {
  const report: MigrationReport = {
    batchId,
    versions: migrations.map((m) => m.version),
    migrated: [],
    upToDate: [],
    failed: [],
    changed: [],
    progress,
  };
  for (const [tenant, result] of [...results].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if ('failure' in result) {
      report.failed.push(result.failure);
      continue;
    }
    const { applied, changed } = result.outcome;
    if (applied.length > 0) report.migrated.push({ tenant, applied });
    else report.upToDate.push(tenant);
    if (changed.length > 0) report.changed.push({ tenant, versions: changed });
  }
  return report;
}
