/**
 * `fleet_settle`: the one statement behind the pg-boss engine's completions and claims.
 * The engine coalesces the `complete` and `fetch` calls of a queue that arrive while an
 * earlier statement is in flight (settle-batcher.ts) and sends them as one call of this
 * function: one round trip and one commit (one WAL flush) for a batch of jobs rather than
 * one per job, which is what raw pg-boss gets from `fetch({ batchSize })` + `complete(ids)`.
 *
 * Inside, everything is set-based, and rows that others may lock too are taken in one
 * order (job rows by id, batch rows by id, partition rows by tenant), the same order
 * extendLocks, recoverStalled and enqueues take them in; a deadlock victim all the same
 * is retried by the batcher (the call is one statement: whole or not at all):
 *
 * 1. the completed jobs, locked by id, then one UPDATE over the batch (a job whose lock
 *    was lost — another token, or expired — is left alone, as `fleet_finish` leaves it);
 * 2. their fan-out batches' counters, one row at a time in id order;
 * 3. trimming finished rows past `keep_completed`, per partition, as often as one finish
 *    in 16 would (a transaction-scoped try-lock per partition: a trim never waits);
 * 4. one NOTIFY when a finished job's partition is capped (room under the cap);
 * 5. the claims: for uncapped partitions one UPDATE taking up to `n` ready rows of each
 *    tenant through the ready index (a LATERAL probe per tenant, `FOR UPDATE SKIP
 *    LOCKED`); for capped ones `fleet_claim`, in tenant order, which locks the partition
 *    row and counts its active jobs under that lock, so a cap never overshoots.
 *
 * Returns the claimed rows, tenant by tenant in claim order.
 */

/**
 * The cap of tenant `w.t`'s partition, one primary-key probe per claim: a plain join let
 * the planner hash every partition row of the queue (3 ms a batch at 1,000 tenants).
 * `LIMIT 1` keeps the subquery from being pulled up into such a join.
 */
function partitionCap(s: string): string {
  return `SELECT p.cap FROM ${s}.fleet_partition p WHERE p.queue = q AND p.tenant = w.t LIMIT 1`;
}

/** The DDL of `fleet_settle` in schema `s`, whose wake-ups go to `channel`. */
export function settleFunctionDdl(s: string, channel: string): string {
  return `
CREATE OR REPLACE FUNCTION ${s}.fleet_settle(q text, done_ids uuid[], done_tokens text[], outputs jsonb[],
  keep_completed integer, claim_tenants text[], claim_counts integer[], lock_ms bigint)
RETURNS TABLE (tenant text, id uuid, fleet_key text, fleet_name text, data jsonb, retry_count integer,
  retry_limit integer, created_ms double precision, fleet_batch text, token text) AS $$
#variable_conflict use_column
DECLARE done_tenants text[]; done_batches text[]; r record;
  free_t text[]; free_n integer[]; capped_t text[]; capped_n integer[];
BEGIN
  IF cardinality(done_ids) > 0 THEN
    -- The rows first, in id order (as extendLocks takes them), by the primary key.
    PERFORM 1 FROM ${s}.job j WHERE j.name = q AND j.id = ANY(done_ids) ORDER BY j.id FOR UPDATE;
    WITH input AS (
      SELECT * FROM unnest(done_ids, done_tokens, outputs) AS i(id, tok, output)
    ), done AS (
      UPDATE ${s}.job j SET state = 'completed', completed_on = clock_timestamp(), output = i.output
      FROM input i
      WHERE j.name = q AND j.id = ANY(done_ids) AND j.id = i.id AND j.state = 'active'
        AND j.started_on = i.tok::timestamptz
        AND j.started_on + j.expire_in > clock_timestamp()
      RETURNING j.singleton_key AS t, j.fleet_batch AS b
    )
    SELECT array_agg(d.t), array_agg(d.b) INTO done_tenants, done_batches FROM done d;

    FOR r IN SELECT x.b, count(*) AS n FROM unnest(done_batches) AS x(b)
        WHERE x.b IS NOT NULL GROUP BY x.b ORDER BY x.b LOOP
      UPDATE ${s}.fleet_batch fb SET completed = fb.completed + r.n WHERE fb.id = r.b;
    END LOOP;

    FOR r IN SELECT x.t, count(*) AS n FROM unnest(done_tenants) AS x(t) GROUP BY x.t ORDER BY x.t LOOP
      IF random() < r.n / 16.0
          AND pg_try_advisory_xact_lock(hashtext('fleet-trim:' || q), hashtext(r.t)) THEN
        WITH trimmed AS (
          DELETE FROM ${s}.job d WHERE d.name = q AND d.id IN (
            SELECT k.id FROM ${s}.job k
            WHERE k.name = q AND k.singleton_key = r.t AND k.state = 'completed'
            ORDER BY k.completed_on DESC OFFSET keep_completed)
          RETURNING 1
        )
        INSERT INTO ${s}.fleet_count AS c (queue, tenant, completed)
        SELECT q, r.t, count(*) FROM trimmed HAVING count(*) > 0
        ON CONFLICT (queue, tenant) DO UPDATE SET completed = c.completed + excluded.completed;
      END IF;
    END LOOP;

    IF EXISTS (SELECT 1 FROM ${s}.fleet_partition p
        WHERE p.queue = q AND p.tenant = ANY(done_tenants) AND p.cap IS NOT NULL) THEN
      PERFORM pg_notify('${channel}', q);
    END IF;
  END IF;

  IF cardinality(claim_tenants) > 0 THEN
    -- Capped or not, read once: a cap set meanwhile must not send a tenant down both paths.
    SELECT coalesce(array_agg(w.t) FILTER (WHERE p.cap IS NULL), '{}'),
      coalesce(array_agg(w.n) FILTER (WHERE p.cap IS NULL), '{}'),
      coalesce(array_agg(w.t ORDER BY w.t) FILTER (WHERE p.cap IS NOT NULL), '{}'),
      coalesce(array_agg(w.n ORDER BY w.t) FILTER (WHERE p.cap IS NOT NULL), '{}')
    INTO free_t, free_n, capped_t, capped_n
    FROM unnest(claim_tenants, claim_counts) AS w(t, n) CROSS JOIN LATERAL (${partitionCap(s)}) p;

    RETURN QUERY
    WITH picked AS (
      SELECT x.id FROM unnest(free_t, free_n) AS w(t, n) CROSS JOIN LATERAL (
        SELECT j.id FROM ${s}.job j
        WHERE j.name = q AND j.singleton_key = w.t AND j.state < 'active' AND j.start_after <= now()
        ORDER BY j.priority DESC, j.fleet_seq
        LIMIT w.n
        FOR UPDATE SKIP LOCKED) x
    ), claimed AS (
      UPDATE ${s}.job j SET state = 'active', started_on = clock_timestamp(),
        expire_in = make_interval(secs => lock_ms / 1000.0)
      WHERE j.name = q AND j.id = ANY(ARRAY(SELECT picked.id FROM picked))
      RETURNING j.*
    )
    SELECT c.singleton_key, c.id, c.fleet_key, c.fleet_name, c.data, c.retry_count, c.retry_limit,
      (extract(epoch FROM c.created_on) * 1000)::double precision, c.fleet_batch, c.started_on::text
    FROM claimed c ORDER BY c.singleton_key, c.priority DESC, c.fleet_seq;

    FOR r IN SELECT w.t, w.n FROM unnest(capped_t, capped_n) AS w(t, n) ORDER BY w.t LOOP
      RETURN QUERY SELECT r.t, k.* FROM ${s}.fleet_claim(q, r.t, r.n, lock_ms) k;
    END LOOP;
  END IF;
END $$ LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan;
`;
}
