// The public API of tenant-fleet: explicit named exports, nothing else.
// Each block below belongs to one layer of docs/ARCHITECTURE.md.

// fleet: composition of engine, registry, pools and workers
export { Fleet, type FleetJob } from './fleet.js';
export type { FleetOptions, FleetPoolsOptions, ResolvedFleetOptions } from './fleet-options.js';
// metrics: what each worker process publishes for the dashboard, and the fleet summed
export { aggregate, type FleetAggregate, liveSnapshots, STALE_PERIODS } from './metrics/fleet-aggregate.js';
export { RedisSnapshotStore, type RedisSnapshotStoreOptions } from './metrics/redis-snapshot-store.js';
export type { DurationHistogram, JobCounters, ProcessSnapshot, TenantCounters } from './metrics/snapshot.js';
export {
  SnapshotPublisher,
  type SnapshotPublisherEventMap,
  type SnapshotPublisherOptions,
} from './metrics/snapshot-publisher.js';
export { MemorySnapshotStore, type SnapshotStore } from './metrics/snapshot-store.js';
export { snapshotStoreFor } from './metrics/store-for-engine.js';
export {
  BullMqEngine,
  type BullMqEngineEventMap,
  type BullMqEngineOptions,
  type ResolvedBullMqEngineOptions,
} from './queue/bullmq/bullmq-engine.js';
export type {
  BullMqConnection,
  ClusterConnection,
  ClusterNodeAddress,
} from './queue/bullmq/cluster/connection.js';
// queue
export type {
  ActiveJob,
  BackoffOptions,
  BatchProgress,
  EngineName,
  EnqueueJob,
  FailOutcome,
  JobCounts,
  JobInfo,
  JobOptions,
  JobState,
  QueueEngine,
} from './queue/engine.js';
export {
  MemoryEngine,
  type MemoryEngineOptions,
  type ResolvedMemoryEngineOptions,
} from './queue/memory/memory-engine.js';
export {
  PgBossEngine,
  type PgBossEngineEventMap,
  type PgBossEngineOptions,
  type ResolvedPgBossEngineOptions,
} from './queue/pgboss/pgboss-engine.js';
// errors
export {
  AcquireTimeoutError,
  ClosedError,
  ConfigError,
  DatabaseConnectionError,
  FanOutError,
  FleetBudgetError,
  FleetError,
  type FleetErrorCode,
  PoolCapacityError,
  SecretResolutionError,
  TenantConnectionError,
  TenantInactiveError,
  TenantUnavailableError,
  UnknownTenantError,
  UnsupportedError,
  ValidationError,
} from './reporting/errors.js';
// logging and redaction (connection-string credentials never reach a log line or the terminal)
export { createLogger, type Logger, type LoggerOptions } from './reporting/logger.js';
export { redactConnectionString, redactUrl } from './reporting/redact.js';
// scheduler: cron fan-out, catch-up state, startup jobs, tenant migrations
export {
  applyMigrations,
  type MigrationConnection,
  MigrationFailedError,
  type TenantMigrationOutcome,
} from './scheduler/apply-migrations.js';
export {
  type FanOutJob,
  type FanOutRegistry,
  type FanOutResult,
  type FanOutTarget,
  fanOutBatchId,
  fanOutJobId,
} from './scheduler/fan-out.js';
export { loadMigrations, type Migration } from './scheduler/migration-files.js';
export { RedisScheduleStore, type RedisScheduleStoreOptions } from './scheduler/redis-state-store.js';
export {
  type CatchUpPolicy,
  type FanOutOptions,
  type ResolvedSchedulerOptions,
  resolveSchedulerOptions,
  type ScheduleInfo,
  Scheduler,
  type SchedulerEventMap,
  type SchedulerOptions,
  type SkipReason,
} from './scheduler/scheduler.js';
export { SqlScheduleStore, type SqlScheduleStoreOptions } from './scheduler/sql-state-store.js';
export {
  type PrewarmSummary,
  prewarmJob,
  runStartupJobs,
  type StartupEventMap,
  type StartupJob,
  type StartupMode,
  type StartupOptions,
  type StartupResult,
  StartupRun,
} from './scheduler/startup.js';
export { MemoryScheduleStore, type ScheduleStateStore } from './scheduler/state-store.js';
export {
  type MigrateTenantsOptions,
  type MigrationReport,
  migrateTenants,
  type TenantMigrationFailure,
} from './scheduler/tenant-migrations.js';
// tenancy: drivers
export type { DatabaseKind, RawConnection, Row } from './tenancy/drivers/driver.js';
// tenancy: orgs
export {
  type Org,
  type OrgInput,
  type OrgPatch,
  type StorageMode,
  validateSchemaName,
  validateSlug,
} from './tenancy/org.js';
// tenancy: TenantPools, the budgeted, LRU-evicting per-tenant connection pools
export type { BudgetSnapshot } from './tenancy/pool/budget.js';
export type { CloseReason } from './tenancy/pool/connection-pool.js';
// tenancy: the fleet-wide connection budget per database server
export type { FleetBudgetStats, FleetServerStats } from './tenancy/pool/fleet-budget/fleet-budget.js';
export type { FleetBudgetOptions } from './tenancy/pool/fleet-budget/options.js';
// tenancy: registry and secrets
export {
  type OrgCountOptions,
  type OrgListOptions,
  OrgRegistry,
  type OrgRegistryOptions,
  type ResolvedOrgRegistryOptions,
} from './tenancy/registry/org-registry.js';
export type { ProvisionResult } from './tenancy/registry/provision.js';
export {
  ChainSecretsResolver,
  type ChainSecretsResolverOptions,
  defaultSecretsResolver,
  EnvSecretsResolver,
  FileSecretsResolver,
  LiteralSecretsResolver,
  type SecretsResolver,
} from './tenancy/secrets.js';
// tenancy: TenantPools options, stats and prewarm report
export type { ResolvedTenantPoolsOptions, TenantPoolsOptions } from './tenancy/tenant-pools/options.js';
export type { PrewarmReport } from './tenancy/tenant-pools/prewarm.js';
export type {
  EvictReason,
  OpenBreaker,
  PoolCounters,
  PoolEventInfo,
  PoolStats,
  TenantPoolsEventMap,
  TenantPoolsStats,
} from './tenancy/tenant-pools/stats.js';
export type { TenantConnection } from './tenancy/tenant-pools/tenant-connection.js';
// tenancy: TenantPools itself
export { type AcquireOptions, TenantPools } from './tenancy/tenant-pools/tenant-pools.js';
// cli: handler files for `tenant-fleet worker --handlers`
export { defineHandlers, type Handlers } from './worker/define-handlers.js';
// worker: fair pulling across tenants, the handler's context
export { FleetWorker } from './worker/fleet-worker.js';
export type { JobContext, JobHandler } from './worker/job-context.js';
export { UnrecoverableError } from './worker/unrecoverable-error.js';
export {
  type FleetWorkerOptions,
  type ResolvedFleetWorkerOptions,
  resolveFleetWorkerOptions,
} from './worker/worker-options.js';
export type {
  CloseOptions,
  ConnectionLender,
  FleetWorkerDeps,
  FleetWorkerEventMap,
  OrgSource,
} from './worker/worker-types.js';
