/**
 * The lease protocol in Postgres, one plpgsql function per step, in a schema named after
 * the fleet's prefix. Per database server:
 *
 * - `servers` — one row per server: the mutex every step that grants a lease locks
 *   (`FOR UPDATE`), so counting the live leases and inserting one is strict under
 *   concurrency, and the counter that numbers the FIFO's arrivals.
 * - `leases` — lease id → expiry (the server's clock). Expired rows are deleted by every
 *   step that counts under the mutex, so a crashed process's leases stop counting within
 *   the lease TTL without anyone cleaning up after it.
 * - `tickets` — the fleet-wide FIFO of waiters, by arrival: a caller may take a lease only
 *   when fewer tickets are ahead of it than leases are free. A ticket expires like a lease;
 *   a live waiter refreshes it on every try.
 * - `state` — one row: the epoch of these tables and the fence after a lost state.
 *
 * The tables are durable (WAL), so a Postgres restart keeps the leases, unlike a Redis
 * that restarts empty. What remains of the Redis store's epoch and fence is for tables
 * that were dropped (or a `state` row deleted): whoever recreates them writes a new epoch,
 * and the first process that held leases under the old one fences new leases for one TTL
 * while the holders re-register theirs at their next renewal.
 *
 * Messages go out with NOTIFY on one channel named like the schema: `{"released": server}`
 * when a lease or ticket goes while someone is queued, `{"want": server, "from": id}`.
 */
import { createHash } from 'node:crypto';

/** `name` as a quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `text` as a quoted SQL string literal. */
export function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Postgres error codes meaning the schema, a table or a function is gone: create them again. */
export const MISSING_CODES: ReadonlySet<string> = new Set(['3F000', '42P01', '42883']);

/**
 * How long creating the schema may take: DDL waits for catalog locks, which other work
 * on a busy server (databases created and dropped) holds for a while, and processes
 * starting together queue on the advisory lock; a step's own bound is far shorter.
 */
export const ENSURE_TIMEOUT_MS = 15_000;

/**
 * Creates the schema, tables and functions, idempotently: one implicit transaction (a
 * multi-statement query) under an advisory lock, so processes starting together do not
 * race on `CREATE`, with a statement timeout of its own (ENSURE_TIMEOUT_MS). Creating
 * any table writes a new epoch. It ends with a function returning a hash of the DDL, which lets
 * a process that finds it skip all this (see readySql). A function, not a comment on the
 * schema: commenting needs the schema's owner, and a DBA may have created the schema and
 * granted only CREATE on it.
 */
export function ensureSql(schema: string): string {
  const text = ddl(schema);
  return `${text}
CREATE OR REPLACE FUNCTION ${ident(schema)}.version() RETURNS text LANGUAGE sql IMMUTABLE
  AS $v$${versionBody(text)}$v$;
`;
}

/**
 * The body of `version()`: a hash of the DDL, so a process of another version (other
 * functions) runs it again.
 */
function versionBody(ddlText: string): string {
  const hash = createHash('sha256').update(ddlText).digest('hex').slice(0, 16);
  return `SELECT ${literal(`tenant-fleet lease store ${hash}`)}`;
}

/**
 * Whether the schema is there as ensureSql leaves it (the version function returning this
 * stamp, the four tables and the index), in one read that takes no lock and needs no
 * right on the schema. The DDL must not run when it need not: even with IF NOT EXISTS,
 * `CREATE INDEX` waits for every step in flight on the table and holds every later one
 * until it commits, so a process starting stalled the whole fleet's takes. A function
 * dropped alone is not seen here; its call fails with 42883 and the link runs ensureSql.
 */
export function readySql(schema: string): string {
  const s = ident(schema);
  const exists = (relation: string) => `to_regclass(${literal(`${s}.${relation}`)}) IS NOT NULL`;
  const version = `(SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(${literal(`${s}.version()`)}))`;
  return `SELECT coalesce(${version} = ${literal(versionBody(ddl(schema)))} AND ${[
    'servers',
    'leases',
    'tickets',
    'tickets_arrival',
    'state',
  ]
    .map(exists)
    .join(' AND ')}, false) AS ready`;
}

function ddl(schema: string): string {
  const s = ident(schema);
  const reg = (table: string) => `to_regclass(${literal(`${s}.${table}`)}) IS NULL`;
  const ttl = `p_ttl_ms * interval '1 millisecond'`;
  const channel = literal(schema);
  return `
SET LOCAL statement_timeout = ${ENSURE_TIMEOUT_MS};
SELECT pg_advisory_xact_lock(hashtext('tenant-fleet:fleet-budget'), hashtext(${literal(schema)}));
DO $ensure$
DECLARE
  v_missing boolean := ${['servers', 'leases', 'tickets', 'state'].map(reg).join(' OR ')};
BEGIN
  -- Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even then.
  IF to_regnamespace(${literal(s)}) IS NULL THEN
    CREATE SCHEMA ${s};
  END IF;
  CREATE TABLE IF NOT EXISTS ${s}.servers (
    server text PRIMARY KEY,
    arrivals bigint NOT NULL DEFAULT 0
  );
  CREATE TABLE IF NOT EXISTS ${s}.leases (
    server text NOT NULL,
    id text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (server, id)
  );
  CREATE TABLE IF NOT EXISTS ${s}.tickets (
    server text NOT NULL,
    ticket text NOT NULL,
    arrival bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (server, ticket)
  );
  CREATE INDEX IF NOT EXISTS tickets_arrival ON ${s}.tickets (server, arrival);
  CREATE TABLE IF NOT EXISTS ${s}.state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch text NOT NULL,
    fenced_until timestamptz NOT NULL DEFAULT '-infinity'
  );
  IF v_missing THEN
    INSERT INTO ${s}.state (epoch) VALUES (md5(random()::text || clock_timestamp()::text))
      ON CONFLICT (singleton) DO UPDATE SET epoch = EXCLUDED.epoch, fenced_until = '-infinity';
  ELSE
    INSERT INTO ${s}.state (epoch) VALUES (md5(random()::text || clock_timestamp()::text))
      ON CONFLICT (singleton) DO NOTHING;
  END IF;
END
$ensure$;

-- The epoch check of every take and renewal: a caller that knew another epoch (the
-- tables were recreated since) fences new leases for one TTL, unless a fence stands.
CREATE OR REPLACE FUNCTION ${s}.check_epoch(p_known text, p_ttl_ms int, p_now timestamptz,
  OUT o_epoch text, OUT o_fenced boolean) LANGUAGE plpgsql AS $fn$
BEGIN
  SELECT st.epoch, st.fenced_until > p_now INTO o_epoch, o_fenced FROM ${s}.state st;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the fleet budget''s state row is gone' USING ERRCODE = 'undefined_table';
  END IF;
  IF p_known <> '' AND p_known <> o_epoch AND NOT o_fenced THEN
    UPDATE ${s}.state SET fenced_until = p_now + ${ttl} WHERE fenced_until <= p_now;
    o_fenced := true;
  END IF;
END
$fn$;

-- Locks the server's row (creating it on first use): the mutex of its budget.
CREATE OR REPLACE FUNCTION ${s}.lock_server(p_server text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM 1 FROM ${s}.servers sv WHERE sv.server = p_server FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO ${s}.servers (server) VALUES (p_server) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM ${s}.servers sv WHERE sv.server = p_server FOR UPDATE;
  END IF;
END
$fn$;

-- Takes a lease, or queues the caller's ticket (see LeaseStore.take).
CREATE OR REPLACE FUNCTION ${s}.take(p_server text, p_limit int, p_id text, p_ticket text,
  p_ttl_ms int, p_known text, OUT o_taken boolean, OUT o_live int, OUT o_epoch text)
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz;
  v_fenced boolean;
  v_ahead int;
  v_arrival bigint;
BEGIN
  PERFORM ${s}.lock_server(p_server);
  -- Read after the lock: the clock, and (each statement a new snapshot) every change
  -- committed by the one who held the lock before.
  v_now := clock_timestamp();
  SELECT ce.o_epoch, ce.o_fenced INTO o_epoch, v_fenced FROM ${s}.check_epoch(p_known, p_ttl_ms, v_now) ce;
  DELETE FROM ${s}.leases l WHERE l.server = p_server AND l.expires_at <= v_now;
  DELETE FROM ${s}.tickets t WHERE t.server = p_server AND t.expires_at <= v_now;
  SELECT count(*) INTO o_live FROM ${s}.leases l WHERE l.server = p_server;
  IF p_ticket <> '' THEN
    SELECT t.arrival INTO v_arrival FROM ${s}.tickets t WHERE t.server = p_server AND t.ticket = p_ticket;
  END IF;
  SELECT count(*) INTO v_ahead FROM ${s}.tickets t
    WHERE t.server = p_server AND (v_arrival IS NULL OR t.arrival < v_arrival);
  IF p_limit - o_live > v_ahead AND NOT v_fenced THEN
    INSERT INTO ${s}.leases (server, id, expires_at) VALUES (p_server, p_id, v_now + ${ttl})
      ON CONFLICT (server, id) DO UPDATE SET expires_at = EXCLUDED.expires_at;
    IF v_arrival IS NOT NULL THEN
      DELETE FROM ${s}.tickets t WHERE t.server = p_server AND t.ticket = p_ticket;
    END IF;
    o_taken := true;
    o_live := o_live + 1;
    RETURN;
  END IF;
  o_taken := false;
  IF p_ticket = '' THEN
    RETURN;
  END IF;
  IF v_arrival IS NULL THEN
    UPDATE ${s}.servers sv SET arrivals = sv.arrivals + 1 WHERE sv.server = p_server
      RETURNING sv.arrivals INTO v_arrival;
    INSERT INTO ${s}.tickets (server, ticket, arrival, expires_at)
      VALUES (p_server, p_ticket, v_arrival, v_now + ${ttl});
  ELSE
    UPDATE ${s}.tickets t SET expires_at = v_now + ${ttl} WHERE t.server = p_server AND t.ticket = p_ticket;
  END IF;
END
$fn$;

-- Gives a lease back; wakes the waiters when someone is queued. Needs no lock: a take
-- running meanwhile at worst still counts the lease (it refuses, never over-grants).
CREATE OR REPLACE FUNCTION ${s}.release(p_server text, p_id text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM ${s}.leases l WHERE l.server = p_server AND l.id = p_id;
  IF EXISTS (SELECT 1 FROM ${s}.tickets t WHERE t.server = p_server) THEN
    PERFORM pg_notify(${channel}, json_build_object('released', p_server)::text);
  END IF;
END
$fn$;

-- Withdraws a waiter's ticket and wakes the others: the ones behind it may move up.
CREATE OR REPLACE FUNCTION ${s}.withdraw(p_server text, p_ticket text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM ${s}.tickets t WHERE t.server = p_server AND t.ticket = p_ticket;
  IF FOUND THEN
    PERFORM pg_notify(${channel}, json_build_object('released', p_server)::text);
  END IF;
END
$fn$;

-- Renews every lease of one process: p_servers is a JSON array of {server, limit, ids}.
-- Servers where it holds leases are locked in name order (two renewals never deadlock);
-- a lease that lapsed is taken again when the server has room (fence or not: the fence
-- waits for exactly these re-registrations), else reported lost. Returns
-- {"epoch": …, "servers": {server: {"live": n, "lost": [ids]}}}.
CREATE OR REPLACE FUNCTION ${s}.renew(p_ttl_ms int, p_known text, p_servers jsonb)
  RETURNS jsonb LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz;
  v_epoch text;
  v_out jsonb := '{}';
  v_entry record;
  v_ids text[];
  v_id text;
  v_lost text[];
  v_live int;
BEGIN
  FOR v_entry IN
    SELECT e->>'server' AS server FROM jsonb_array_elements(p_servers) e
    WHERE jsonb_array_length(e->'ids') > 0 ORDER BY 1
  LOOP
    PERFORM ${s}.lock_server(v_entry.server);
  END LOOP;
  v_now := clock_timestamp();
  SELECT ce.o_epoch INTO v_epoch FROM ${s}.check_epoch(p_known, p_ttl_ms, v_now) ce;
  FOR v_entry IN
    SELECT e->>'server' AS server, (e->>'limit')::int AS lim, e->'ids' AS ids FROM jsonb_array_elements(p_servers) e
  LOOP
    v_lost := '{}';
    v_ids := ARRAY(SELECT jsonb_array_elements_text(v_entry.ids));
    IF cardinality(v_ids) > 0 THEN
      DELETE FROM ${s}.leases l WHERE l.server = v_entry.server AND l.expires_at <= v_now;
      UPDATE ${s}.leases l SET expires_at = v_now + ${ttl} WHERE l.server = v_entry.server AND l.id = ANY(v_ids);
      FOREACH v_id IN ARRAY v_ids LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM ${s}.leases l WHERE l.server = v_entry.server AND l.id = v_id);
        SELECT count(*) INTO v_live FROM ${s}.leases l WHERE l.server = v_entry.server;
        IF v_live < v_entry.lim THEN
          INSERT INTO ${s}.leases (server, id, expires_at) VALUES (v_entry.server, v_id, v_now + ${ttl});
        ELSE
          v_lost := v_lost || v_id;
        END IF;
      END LOOP;
    END IF;
    SELECT count(*) INTO v_live FROM ${s}.leases l WHERE l.server = v_entry.server AND l.expires_at > v_now;
    v_out := v_out || jsonb_build_object(v_entry.server, jsonb_build_object('live', v_live, 'lost', to_jsonb(v_lost)));
  END LOOP;
  RETURN jsonb_build_object('epoch', v_epoch, 'servers', v_out);
END
$fn$;
`;
}
