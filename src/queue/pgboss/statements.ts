/**
 * The SQL the pg-boss engine sends besides its plpgsql functions (schema.ts), one
 * builder per statement, each taking the (checked, unquoted-safe) schema name.
 */
import { wakeChannel } from './schema.js';

/**
 * Inserts a bulk from parallel arrays in one statement: the jobs (a repeated id in a
 * partition is skipped by the primary key), their partitions' rows, their batches'
 * totals and one NOTIFY when anything was added, all in one transaction: a delayed job
 * too, since a wait under way read the queue's next due time before it existed.
 * $1 queue; $2 uuids; $3 tenants; $4 keys; $5 names; $6 data; $7 priorities;
 * $8 retry limits; $9 backoffs; $10 delays (ms); $11 batches.
 */
export function enqueueSql(s: string): string {
  return `
WITH input AS (
  SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
    $8::int[], $9::jsonb[], $10::bigint[], $11::text[]) WITH ORDINALITY
    AS i(id, tenant, key, jname, data, priority, retry_limit, backoff, delay_ms, batch, ord)
), partitions AS (
  INSERT INTO ${s}.fleet_partition (queue, tenant)
  SELECT DISTINCT $1::text, tenant FROM input
  ON CONFLICT DO NOTHING
), added AS (
  INSERT INTO ${s}.job (id, name, priority, data, retry_limit, retry_delay, retry_backoff,
    start_after, singleton_key, policy, fleet_key, fleet_name, fleet_batch, fleet_backoff)
  SELECT id, $1::text, priority, data::jsonb, retry_limit,
    ceil(((backoff->>'delayMs')::bigint) / 1000.0)::int, backoff->>'type' = 'exponential',
    now() + make_interval(secs => delay_ms / 1000.0), tenant, 'standard', key, jname, batch, backoff
  FROM input ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING id, fleet_batch
), batches AS (
  INSERT INTO ${s}.fleet_batch AS b (id, total)
  SELECT fleet_batch, count(*) FROM added WHERE fleet_batch IS NOT NULL GROUP BY fleet_batch ORDER BY fleet_batch
  ON CONFLICT (id) DO UPDATE SET total = b.total + excluded.total
), woken AS (
  SELECT pg_notify('${wakeChannel(s)}', $1::text) FROM added LIMIT 1
)
SELECT (SELECT count(*)::int FROM added) AS added, (SELECT count(*)::int FROM woken) AS woken`;
}

/**
 * Extends the locks still held; returns the uuids extended. The rows are locked in id
 * order first, as `fleet_settle` locks the rows it completes, so the two never deadlock.
 * $1 queues; $2 uuids; $3 tokens; $4 lock ms.
 */
export function extendSql(s: string): string {
  return `
WITH x AS (
  SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) AS x(queue, id, token)
), locked AS (
  SELECT j.name, j.id FROM ${s}.job j JOIN x ON j.name = x.queue AND j.id = x.id ORDER BY j.id FOR UPDATE OF j
)
UPDATE ${s}.job j SET expire_in = (clock_timestamp() - j.started_on) + make_interval(secs => $4::bigint / 1000.0)
FROM x JOIN locked l ON l.name = x.queue AND l.id = x.id
WHERE j.name = x.queue AND j.id = x.id AND j.state = 'active' AND j.started_on = x.token::timestamptz
  AND j.started_on + j.expire_in > clock_timestamp()
RETURNING j.id::text AS id`;
}

/**
 * Puts back (or, past `maxStalledCount`, fails) the queue's active jobs whose lock
 * expired, fixing their partitions' counters and batches; NOTIFYs when any came back.
 * $1 queue; $2 maxStalledCount.
 */
export function recoverSql(s: string): string {
  return `
WITH expired AS (
  SELECT j.id FROM ${s}.job j
  WHERE j.name = $1::text AND j.state = 'active' AND j.started_on + j.expire_in <= clock_timestamp()
  FOR UPDATE SKIP LOCKED
), moved AS (
  UPDATE ${s}.job j SET
    state = CASE WHEN j.fleet_stalled + 1 > $2::int THEN 'failed' ELSE 'retry' END::${s}.job_state,
    fleet_stalled = j.fleet_stalled + 1, started_on = NULL, start_after = now(),
    completed_on = CASE WHEN j.fleet_stalled + 1 > $2::int THEN now() END,
    fleet_error = CASE WHEN j.fleet_stalled + 1 > $2::int
      THEN '{"message":"job stalled more than allowable limit","stack":null}'::jsonb ELSE j.fleet_error END
  FROM expired e WHERE j.name = $1::text AND j.id = e.id
  RETURNING j.singleton_key AS tenant, j.state = 'failed' AS failed, j.fleet_batch
), failed_batches AS (
  SELECT fleet_batch, count(*) AS f FROM moved WHERE failed AND fleet_batch IS NOT NULL GROUP BY 1
), locked_batches AS (
  -- In id order, as fleet_settle takes them.
  SELECT b.id FROM ${s}.fleet_batch b WHERE b.id IN (SELECT fleet_batch FROM failed_batches)
  ORDER BY b.id FOR UPDATE
), batches AS (
  UPDATE ${s}.fleet_batch b SET failed = b.failed + m.f
  FROM failed_batches m JOIN locked_batches l ON l.id = m.fleet_batch
  WHERE b.id = m.fleet_batch
), woken AS (
  SELECT pg_notify('${wakeChannel(s)}', $1::text) FROM moved WHERE NOT failed LIMIT 1
)
SELECT (SELECT count(*)::int FROM moved) AS moved, (SELECT count(*)::int FROM woken) AS woken`;
}

/**
 * The tenants with a job ready now: a skip scan over the ready index, one probe per
 * tenant with pending jobs, whatever the number of jobs each holds. $1 queue.
 */
export function readyTenantsSql(s: string): string {
  return `
WITH RECURSIVE pending(tenant) AS (
  (SELECT singleton_key FROM ${s}.job WHERE name = $1::text AND state < 'active' AND singleton_key IS NOT NULL
   ORDER BY singleton_key LIMIT 1)
  UNION ALL
  SELECT (SELECT j.singleton_key FROM ${s}.job j
          WHERE j.name = $1::text AND j.state < 'active' AND j.singleton_key > pending.tenant
          ORDER BY j.singleton_key LIMIT 1)
  FROM pending WHERE pending.tenant IS NOT NULL
)
SELECT tenant FROM pending p
WHERE p.tenant IS NOT NULL AND EXISTS (
  SELECT 1 FROM ${s}.job j
  WHERE j.name = $1::text AND j.singleton_key = p.tenant AND j.state < 'active' AND j.start_after <= now())`;
}

/**
 * Milliseconds until the queue's next delayed job falls due (≤ 0 for a job ready now
 * when $2 is true); no row when none. $1 queue; $2 include ready jobs; $3 how many ms ago
 * the wait began: a job that fell due since then counts as delayed (due ≤ 0), since the
 * read of the ready tenants that followed the wait's start may have come before it.
 */
export function nextDueSql(s: string): string {
  return `
SELECT (extract(epoch FROM (start_after - now())) * 1000)::float8 AS due_ms FROM ${s}.job
WHERE name = $1::text AND state < 'active'
  AND ($2::boolean OR start_after > now() - $3::float8 * interval '1 millisecond')
ORDER BY start_after LIMIT 1`;
}

/** One partition's counts. $1 queue; $2 tenant. */
export function countsSql(s: string): string {
  return `
SELECT
  (SELECT count(*) FILTER (WHERE state < 'active' AND start_after <= now()) FROM ${s}.job
     WHERE name = $1::text AND singleton_key = $2::text AND state < 'active')::int AS waiting,
  (SELECT count(*) FILTER (WHERE state < 'active' AND start_after > now()) FROM ${s}.job
     WHERE name = $1::text AND singleton_key = $2::text AND state < 'active')::int AS delayed,
  (SELECT count(*) FROM ${s}.job WHERE name = $1::text AND singleton_key = $2::text AND state = 'active')::int
     AS active,
  ((SELECT count(*) FROM ${s}.job WHERE name = $1::text AND singleton_key = $2::text AND state = 'completed')
    + coalesce((SELECT completed FROM ${s}.fleet_count WHERE queue = $1::text AND tenant = $2::text), 0))::int
     AS completed,
  ((SELECT count(*) FROM ${s}.job WHERE name = $1::text AND singleton_key = $2::text AND state > 'completed')
    + coalesce((SELECT failed FROM ${s}.fleet_count WHERE queue = $1::text AND tenant = $2::text), 0))::int
     AS failed`;
}

/**
 * A job by its candidate uuids, the caller's id matching; a finished job only while it
 * is among its partition's newest `keep` of its state (older rows wait to be trimmed).
 * $1 queue; $2 tenant; $3 uuids; $4 id; $5 keepCompleted; $6 keepFailed.
 */
export function getJobSql(s: string): string {
  return `
SELECT id::text, fleet_key, fleet_name, data, state::text, start_after <= now() AS due, retry_count,
  retry_limit, priority, (extract(epoch FROM created_on) * 1000)::float8 AS created_ms,
  (extract(epoch FROM completed_on) * 1000)::float8 AS completed_ms, fleet_batch, output, fleet_error
FROM ${s}.job j
WHERE name = $1::text AND id = ANY($3::uuid[]) AND singleton_key = $2::text
  AND (fleet_key = $4::text OR (fleet_key IS NULL AND id::text = $4::text))
  AND (state <= 'active' OR (
    SELECT count(*) FROM ${s}.job k
    WHERE k.name = $1::text AND k.singleton_key = $2::text AND k.state = j.state AND k.state > 'active'
      AND k.completed_on > j.completed_on
  ) < CASE WHEN state = 'completed' THEN $5::int ELSE $6::int END)`;
}

/**
 * Removes the jobs and partition rows of a queue, or of one tenant's partition when $2
 * is not null; returns the tenants found. $1 queue; $2 tenant or null.
 */
export function purgeSql(s: string): string {
  return `
WITH jobs AS (
  DELETE FROM ${s}.job WHERE name = $1::text AND singleton_key IS NOT NULL
    AND ($2::text IS NULL OR singleton_key = $2::text)
  RETURNING singleton_key AS tenant
), partitions AS (
  DELETE FROM ${s}.fleet_partition WHERE queue = $1::text AND ($2::text IS NULL OR tenant = $2::text)
  RETURNING tenant
), counts AS (
  DELETE FROM ${s}.fleet_count WHERE queue = $1::text AND ($2::text IS NULL OR tenant = $2::text)
)
SELECT tenant FROM partitions UNION SELECT tenant FROM jobs ORDER BY 1`;
}

/** A batch's counts. $1 batch id. */
export function batchSql(s: string): string {
  return `SELECT total::int, completed::int, failed::int FROM ${s}.fleet_batch WHERE id = $1::text`;
}

/** Removes one tenant's jobs and partitions from every queue; returns the queues found. $1 tenant. */
export function purgeTenantSql(s: string): string {
  return `
WITH jobs AS (
  DELETE FROM ${s}.job WHERE singleton_key = $1::text AND fleet_name IS NOT NULL RETURNING name
), partitions AS (
  DELETE FROM ${s}.fleet_partition WHERE tenant = $1::text RETURNING queue
), counts AS (
  DELETE FROM ${s}.fleet_count WHERE tenant = $1::text RETURNING queue
)
SELECT queue FROM partitions UNION SELECT queue FROM counts UNION SELECT name FROM jobs ORDER BY 1`;
}
