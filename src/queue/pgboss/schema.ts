/**
 * What the pg-boss engine adds to a pg-boss schema: pg-boss creates (and migrates) its
 * own tables, then this installs, once per schema and under an advisory lock:
 *
 * - columns on pg-boss's `job` table for what pg-boss has no place for (the caller's job
 *   id, the job's name within the queue, its batch, its backoff in milliseconds, a
 *   sequence for FIFO order within a bulk, the stall count and the last error);
 * - `fleet_partition`: one row per (queue, tenant) with its fleet-wide cap; a claim of a
 *   capped tenant locks this row and counts its active jobs, so a cap holds strictly;
 * - `fleet_count`: per partition, the finished jobs whose rows were trimmed (counts add
 *   the rows still kept);
 * - `fleet_batch`: the counts `batchProgress` reads;
 * - partial indexes: the ready index `(name, tenant, priority, seq) WHERE state <
 *   'active'` that claims and `readyTenants` (a skip scan) read, and one of active jobs;
 * - `fleet_claim` / `fleet_finish` / `fleet_settle` (settle-function.ts): plpgsql
 *   functions, so a claim, a failure or a batch of completions and claims is one round
 *   trip, and each statement inside sees a fresh snapshot (READ COMMITTED), which is
 *   what makes the cap check strict after the row lock. Their
 *   plans are generic from the first call: custom plans re-plan over every partition of
 *   pg-boss's `job` (one per queue) on each of a connection's first five calls.
 *
 * The tenant is pg-boss's `singleton_key` (free under the `standard` policy the engine
 * creates queues with), so pg-boss's own API and dashboards see the tenant of each job.
 */
import type pg from 'pg';
import PgBoss from 'pg-boss';
import { settleFunctionDdl } from './settle-function.js';

/** Bumped when what `install` creates changes; stored in `<schema>.fleet_version`. */
const FLEET_SCHEMA_VERSION = 3;

/** The NOTIFY channel of a schema's wake-ups; the payload is the queue name. */
export function wakeChannel(schema: string): string {
  return `fleet_${schema}`;
}

function ddl(s: string): string {
  const channel = wakeChannel(s);
  return `
CREATE SEQUENCE IF NOT EXISTS ${s}.fleet_seq;
ALTER TABLE ${s}.job
  ADD COLUMN IF NOT EXISTS fleet_seq bigint DEFAULT nextval('${s}.fleet_seq'),
  ADD COLUMN IF NOT EXISTS fleet_key text,
  ADD COLUMN IF NOT EXISTS fleet_name text,
  ADD COLUMN IF NOT EXISTS fleet_batch text,
  ADD COLUMN IF NOT EXISTS fleet_backoff jsonb,
  ADD COLUMN IF NOT EXISTS fleet_stalled integer NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS fleet_error jsonb;
CREATE INDEX IF NOT EXISTS fleet_ready ON ${s}.job (name, singleton_key, priority DESC, fleet_seq)
  WHERE state < 'active';
CREATE INDEX IF NOT EXISTS fleet_active ON ${s}.job (name, singleton_key) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS fleet_finished ON ${s}.job (name, singleton_key, state, completed_on)
  WHERE state > 'active';
CREATE TABLE IF NOT EXISTS ${s}.fleet_partition (
  queue text NOT NULL,
  tenant text NOT NULL,
  cap integer,
  PRIMARY KEY (queue, tenant)
);
-- Apart from fleet_partition, so finishes never wait on a capped claim's row lock.
CREATE TABLE IF NOT EXISTS ${s}.fleet_count (
  queue text NOT NULL,
  tenant text NOT NULL,
  completed bigint NOT NULL DEFAULT 0,
  failed bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, tenant)
);
CREATE TABLE IF NOT EXISTS ${s}.fleet_batch (
  id text PRIMARY KEY,
  total bigint NOT NULL DEFAULT 0,
  completed bigint NOT NULL DEFAULT 0,
  failed bigint NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION ${s}.fleet_claim(q text, t text, n integer, lock_ms bigint)
RETURNS TABLE (id uuid, fleet_key text, fleet_name text, data jsonb, retry_count integer,
  retry_limit integer, created_ms double precision, fleet_batch text, token text) AS $$
#variable_conflict use_column
DECLARE cap_now integer; room integer := n;
BEGIN
  SELECT p.cap INTO cap_now FROM ${s}.fleet_partition p WHERE p.queue = q AND p.tenant = t;
  IF NOT FOUND THEN RETURN; END IF;
  IF cap_now IS NOT NULL THEN
    -- The partition row is the capped tenant's mutex: its claims queue up here, and the
    -- count below is a new statement, so it sees every claim committed before the lock
    -- was granted (READ COMMITTED takes a snapshot per statement): never an overshoot.
    SELECT p.cap INTO cap_now FROM ${s}.fleet_partition p WHERE p.queue = q AND p.tenant = t FOR UPDATE;
    IF cap_now IS NOT NULL THEN
      SELECT LEAST(n, cap_now - count(*)) INTO room FROM ${s}.job a
        WHERE a.name = q AND a.singleton_key = t AND a.state = 'active';
    END IF;
  END IF;
  IF room <= 0 THEN RETURN; END IF;
  RETURN QUERY
  WITH picked AS (
    SELECT j.id FROM ${s}.job j
    WHERE j.name = q AND j.singleton_key = t AND j.state < 'active' AND j.start_after <= now()
    ORDER BY j.priority DESC, j.fleet_seq
    LIMIT room
    FOR UPDATE SKIP LOCKED
  ), claimed AS (
    UPDATE ${s}.job j SET state = 'active', started_on = clock_timestamp(),
      expire_in = make_interval(secs => lock_ms / 1000.0)
    FROM picked WHERE j.name = q AND j.id = picked.id
    RETURNING j.*
  )
  SELECT c.id, c.fleet_key, c.fleet_name, c.data, c.retry_count, c.retry_limit,
    (extract(epoch FROM c.created_on) * 1000)::double precision, c.fleet_batch, c.started_on::text
  FROM claimed c ORDER BY c.priority DESC, c.fleet_seq;
END $$ LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan;

-- ok: complete with output; else fail with err. Answers 'lost' when the caller's lock
-- (its token, the claim's started_on) no longer holds, else completed/retrying/failed.
CREATE OR REPLACE FUNCTION ${s}.fleet_finish(q text, t text, jid uuid, tok text, ok boolean,
  output jsonb, err jsonb, unrecoverable boolean, keep_completed integer, keep_failed integer)
RETURNS text AS $$
#variable_conflict use_column
DECLARE r record; outcome text; delay_ms double precision; cap_now integer;
BEGIN
  SELECT j.retry_count, j.retry_limit, j.fleet_batch, j.fleet_backoff INTO r FROM ${s}.job j
    WHERE j.name = q AND j.id = jid AND j.state = 'active' AND j.started_on = tok::timestamptz
      AND j.started_on + j.expire_in > clock_timestamp()
    FOR UPDATE;
  IF NOT FOUND THEN RETURN 'lost'; END IF;
  IF ok THEN
    outcome := 'completed';
    UPDATE ${s}.job j SET state = 'completed', completed_on = clock_timestamp(), output = fleet_finish.output
      WHERE j.name = q AND j.id = jid;
  ELSIF unrecoverable OR r.retry_count + 1 > r.retry_limit THEN
    outcome := 'failed';
    UPDATE ${s}.job j SET state = 'failed', completed_on = clock_timestamp(), output = err, fleet_error = err,
      retry_count = j.retry_count + 1
      WHERE j.name = q AND j.id = jid;
  ELSE
    outcome := 'retrying';
    delay_ms := CASE WHEN r.fleet_backoff->>'type' = 'fixed' THEN (r.fleet_backoff->>'delayMs')::double precision
      ELSE round(power(2, r.retry_count) * (r.fleet_backoff->>'delayMs')::double precision) END;
    UPDATE ${s}.job j SET state = 'retry', started_on = NULL, output = err, fleet_error = err,
      retry_count = j.retry_count + 1, start_after = clock_timestamp() + make_interval(secs => delay_ms / 1000.0)
      WHERE j.name = q AND j.id = jid;
  END IF;
  IF r.fleet_batch IS NOT NULL AND outcome <> 'retrying' THEN
    UPDATE ${s}.fleet_batch b SET completed = b.completed + (outcome = 'completed')::integer,
        failed = b.failed + (outcome = 'failed')::integer
      WHERE b.id = r.fleet_batch;
  END IF;
  -- Finished rows are kept up to a bound per partition: getJob hides those past it at
  -- once, and about one finish in 16 deletes them, adding them to fleet_count, so the
  -- counts stay whole and no finish waits on a partition-wide counter row. One trim per
  -- partition at a time (a transaction-scoped try-lock; the others skip it): two trims
  -- deleting the same rows in different orders deadlocked under concurrent finishes.
  IF outcome <> 'retrying' AND random() < 0.0625
      AND pg_try_advisory_xact_lock(hashtext('fleet-trim:' || q), hashtext(t)) THEN
    WITH trimmed AS (
      DELETE FROM ${s}.job d WHERE d.name = q AND d.id IN (
        SELECT k.id FROM ${s}.job k
        WHERE k.name = q AND k.singleton_key = t AND k.state = outcome::${s}.job_state
          AND k.state > 'active'
        ORDER BY k.completed_on DESC
        OFFSET CASE WHEN outcome = 'completed' THEN keep_completed ELSE keep_failed END)
      RETURNING 1
    )
    INSERT INTO ${s}.fleet_count AS c (queue, tenant, completed, failed)
    SELECT q, t, count(*) * (outcome = 'completed')::integer, count(*) * (outcome = 'failed')::integer
    FROM trimmed HAVING count(*) > 0
    ON CONFLICT (queue, tenant) DO UPDATE SET completed = c.completed + excluded.completed,
      failed = c.failed + excluded.failed;
  END IF;
  SELECT p.cap INTO cap_now FROM ${s}.fleet_partition p WHERE p.queue = q AND p.tenant = t;
  -- A retry is a job becoming ready; a finish frees room under a cap.
  IF outcome = 'retrying' OR cap_now IS NOT NULL THEN
    PERFORM pg_notify('${channel}', q);
  END IF;
  RETURN outcome;
END $$ LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan;


${settleFunctionDdl(s, channel)}
CREATE TABLE IF NOT EXISTS ${s}.fleet_version (version integer NOT NULL);
DELETE FROM ${s}.fleet_version;
INSERT INTO ${s}.fleet_version (version) VALUES (${FLEET_SCHEMA_VERSION});
`;
}

/**
 * Installs the engine's columns, tables and functions into `schema` (pg-boss's, already
 * created) unless they are there; safe to run from many processes at once.
 */
async function installFleetSchema(pool: pg.Pool, schema: string): Promise<void> {
  const current = async (db: pg.Pool | pg.PoolClient): Promise<boolean> => {
    const exists = `SELECT to_regclass('${schema}.fleet_version') IS NOT NULL AS installed`;
    if (!(await db.query<{ installed: boolean }>(exists)).rows[0]!.installed) return false;
    const version = `SELECT coalesce(max(version), 0) AS version FROM ${schema}.fleet_version`;
    return (await db.query<{ version: number }>(version)).rows[0]!.version >= FLEET_SCHEMA_VERSION;
  };
  if (await current(pool)) return;
  // Every statement of the DDL is idempotent, so an older install is brought up to date by running it again.
  await withSchemaLock(pool, schema, async (client) => {
    if (!(await current(client))) await client.query(ddl(schema));
  });
}

/**
 * Runs `work` in a transaction holding pg-boss's own advisory lock on `schema` (the one
 * pg-boss takes to create or migrate it), so schema changes made by the fleet and by
 * pg-boss in many processes at once never race.
 */
export async function withSchemaLock(
  pool: pg.Pool,
  schema: string,
  work: (client: pg.PoolClient) => Promise<void>,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `SELECT pg_advisory_xact_lock(('x' || encode(sha224((current_database() || '.pgboss.' || $1)::bytea), 'hex'))::bit(64)::bigint)`,
      [schema],
    );
    await work(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Lets pg-boss create (or migrate) its schema on `pool` (no workers, no maintenance: the
 * engine sweeps its own stalled jobs), then installs the engine's part.
 */
export async function startBossSchema(
  pool: pg.Pool,
  schema: string,
  onError: (error: Error) => void,
): Promise<PgBoss> {
  const boss = new PgBoss({
    db: { executeSql: (text: string, values?: unknown[]) => pool.query(text, values) },
    schema,
    supervise: false,
    schedule: false,
    migrate: true,
  });
  boss.on('error', onError);
  await boss.start();
  await installFleetSchema(pool, schema);
  return boss;
}

/**
 * Whether `error` says the database could not be reached or would not let us in (a
 * socket error, SQLSTATE classes 08 and 28, an unknown database), rather than a failed
 * statement.
 */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error instanceof Error && /connect|terminat/i.test(error.message);
  return /^E[A-Z]+$/.test(code) || /^(08|28)/.test(code) || code === '3D000';
}
