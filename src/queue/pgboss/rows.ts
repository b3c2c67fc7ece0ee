/**
 * Between the engine's ids and rows and pg-boss's: pg-boss keys a job by a uuid, the
 * engine by the caller's `jobId` (any string) within a partition. A job enqueued with a
 * `jobId` gets the uuid derived from (tenant, jobId), so the primary key `(name, id)`
 * makes a repeated id in one partition a no-op; a job without one gets a random uuid,
 * which is then its id.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ActiveJob, JobInfo, JobState } from '../engine.js';
import { MAX_PRIORITY } from '../job-input.js';

/** What a claim returns per job (the columns of `fleet_claim`). */
export interface ClaimedRow {
  id: string;
  fleet_key: string | null;
  fleet_name: string;
  data: unknown;
  retry_count: number;
  retry_limit: number;
  created_ms: number;
  fleet_batch: string | null;
  token: string;
}

/** The engine-private part of an {@link ActiveJob}: the row's uuid and the claim's token. */
export interface PgBossLease {
  uuid: string;
  token: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The uuid of the job `key` in `tenant`'s partition (a name-based, RFC 4122 v5-shaped uuid). */
export function keyedUuid(tenant: string, key: string): string {
  const hex = createHash('sha1').update(`${tenant}\u0000${key}`).digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The uuid a new job is stored under. */
export function newJobUuid(tenant: string, key: string | null): string {
  return key === null ? randomUUID() : keyedUuid(tenant, key);
}

/** The uuids a caller's id may be stored under: keyed, or (when it is one) a random uuid. */
export function candidateUuids(tenant: string, id: string): string[] {
  return UUID.test(id) ? [keyedUuid(tenant, id), id] : [keyedUuid(tenant, id)];
}

/** pg-boss runs the highest `priority` first; the engine's 1 is the highest, unset last. */
export function toBossPriority(priority: number | null): number {
  return priority === null ? 0 : MAX_PRIORITY + 1 - priority;
}

function fromBossPriority(priority: number): number | null {
  return priority === 0 ? null : MAX_PRIORITY + 1 - priority;
}

/** A claimed row as the job a worker holds. */
export function toActiveJob(queue: string, tenant: string, row: ClaimedRow): ActiveJob {
  const lease: PgBossLease = { uuid: row.id, token: row.token };
  return {
    id: row.fleet_key ?? row.id,
    queue,
    tenant,
    name: row.fleet_name,
    data: row.data,
    attempt: row.retry_count + 1,
    maxAttempts: row.retry_limit + 1,
    enqueuedAt: Math.round(row.created_ms),
    batchId: row.fleet_batch,
    lease,
  };
}

/** A job row as `getJob` reads it. */
export interface JobRow {
  id: string;
  fleet_key: string | null;
  fleet_name: string;
  data: unknown;
  state: string;
  due: boolean;
  retry_count: number;
  retry_limit: number;
  priority: number;
  created_ms: number;
  completed_ms: number | null;
  fleet_batch: string | null;
  output: unknown;
  fleet_error: { message: string; stack: string | null } | null;
}

function stateOf(row: JobRow): JobState {
  if (row.state === 'created' || row.state === 'retry') return row.due ? 'waiting' : 'delayed';
  if (row.state === 'active' || row.state === 'completed') return row.state;
  return 'failed'; // pg-boss's own `cancel` as well
}

/** The read-only view of a job row. */
export function toJobInfo(queue: string, tenant: string, row: JobRow): JobInfo {
  const state = stateOf(row);
  return {
    id: row.fleet_key ?? row.id,
    queue,
    tenant,
    name: row.fleet_name,
    data: row.data,
    state,
    attemptsMade: row.retry_count,
    maxAttempts: row.retry_limit + 1,
    priority: fromBossPriority(row.priority),
    enqueuedAt: Math.round(row.created_ms),
    finishedAt: state === 'completed' || state === 'failed' ? Math.round(row.completed_ms ?? 0) : null,
    batchId: row.fleet_batch,
    result: state === 'completed' ? (row.output ?? null) : null,
    error: row.fleet_error && { message: row.fleet_error.message, stack: row.fleet_error.stack ?? null },
  };
}
