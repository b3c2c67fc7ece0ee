/**
 * The few Lua scripts the BullMQ engine adds beside BullMQ's own. Each one reads and
 * writes the ready index together with a partition's BullMQ keys in one atomic step,
 * which is what keeps readiness from being lost when producers and consumers race. The
 * job moves inside them (fetchNext, finish) are the fleet's own, in job-moves.ts.
 *
 * Every key a script touches lies in one shard's hash slot (cluster/key-layout.ts):
 *   P:{T}:ready, P:{T}:active-tenants, P:{T}:finished (ZSET <tenant>:<id> → finish time:
 *   the queue's completed jobs), P:{T}:#batch:<id> (HASH total / completed /
 *   failed), and BullMQ's own P:{T}:Q.<tenant>:wait, :prioritized, :delayed, :active, …
 * so FINISH_AND_TAKE may only join two partitions of one shard. TAKE, FINISH_NEXT and
 * FINISH_AND_TAKE name a partition's keys from its prefix, which carries the shard's tag:
 * the same slot as the keys they declare.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import { FETCH_NEXT, FINISH, TRIM_FINISHED } from './job-moves.js';

/**
 * What a partition gives up once it has nothing waiting, so that an idle tenant costs
 * Redis next to nothing whatever it ran before (Lua, prepended to the scripts below):
 * - its BullMQ `events` stream, which no part of the fleet reads (the enqueue sets the
 *   partition's `opts.maxLenEvents` to 0, so a busy partition keeps at most one stream
 *   node; this drops the rest);
 * - the completed jobs its `completed` set holds, handed over to the logical queue's
 *   `finished` set (TRIM_FINISHED, job-moves.ts), where the fleet's own completions put
 *   them at once: those BullMQ's moveToFinished completed (a job with a parent or a
 *   deduplication id), or an earlier version of the engine. So finished-job retention is
 *   bounded per logical queue, not per tenant. Failed jobs stay in their partition
 *   (bounded by `keepFailed`), where an operator retries them from bull-board.
 */
const RETIRE = `${TRIM_FINISHED}
local function retire(events, completed, finished, jobPrefix, tenant, keep)
  redis.call('DEL', events)
  local done = redis.call('ZRANGE', completed, 0, -1, 'WITHSCORES')
  if #done == 0 then return end
  -- Up to 1,000 members or keys per command (a partition keeps up to keepCompleted).
  for from = 1, #done, 2000 do
    local entries = {}
    for i = from, math.min(from + 1999, #done), 2 do
      entries[#entries + 1] = done[i + 1]
      entries[#entries + 1] = tenant .. ':' .. done[i]
    end
    redis.call('ZADD', finished, unpack(entries))
  end
  redis.call('DEL', completed)
  trimFinished(finished, jobPrefix, keep)
end
`;

/**
 * After a fetch found nothing: keep the tenant listed if its partition (named by its key
 * prefix `P:{tag}:Q.T:`) still has a waiting job, move its score to the first delayed
 * job's due time if it has one, and only otherwise remove it. A concurrent enqueue
 * re-adds the tenant in the same MULTI as the job, so whichever runs first, the index
 * ends up right. With nothing waiting, the partition retires its events and completed
 * jobs (RETIRE).
 */
const SETTLE = `${RETIRE}
local function waiting(prefix)
  return redis.call('ZCARD', prefix .. 'prioritized') > 0 or redis.call('LLEN', prefix .. 'wait') > 0
    or redis.call('LLEN', prefix .. 'paused') > 0
end
local function settle(ready, prefix, finished, tenant, queueJobPrefix, keep)
  if waiting(prefix) then return 1 end
  retire(prefix .. 'events', prefix .. 'completed', finished, queueJobPrefix, tenant, keep)
  local first = redis.call('ZRANGE', prefix .. 'delayed', 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', ready, math.floor(tonumber(first[2]) / 4096), tenant)
    return 2
  end
  redis.call('ZREM', ready, tenant)
  return 0
end
-- After the job taken as its partition's last one waiting (lastReady: the tenant left the
-- ready index then): retire the partition unless the tenant is listed again, one lookup
-- of the shard's hot index where the partition's three cold lists were asked. An enqueue
-- lists the tenant in the same step as its job; a retry or a stalled job's recovery one
-- round trip later, a job added through BullMQ's own API (or requeued by its
-- moveToFinished) at the next marker sweep. Retiring in such a gap only drops the events
-- and hands the completed jobs to the queue's set early: nothing that waits is touched.
-- A tenant listed for a delayed job alone retires later (its settle, or RECONCILE).
local function settleLast(ready, prefix, finished, tenant, queueJobPrefix, keep)
  if redis.call('ZSCORE', ready, tenant) then return end
  retire(prefix .. 'events', prefix .. 'completed', finished, queueJobPrefix, tenant, keep)
end
`;

/**
 * A fetch from one partition, the fleet's own: fetchNext (job-moves.ts) on the
 * partition named by its key prefix (its keys are named here, fewer bytes to send),
 * preceded when asked by the partition's announcement to the stalled sweeps (so Redis
 * records it before any job of it is active) and followed, when it took nothing, by
 * SETTLE. One round trip where a fetch took up to three. A job taken when nothing else
 * waits in its partition, nor is delayed there, carries a fifth element, 1, after
 * fetchNext's four (`lastReady` of the ActiveJob: the worker then ends the turn with
 * it rather than ask for another), and the tenant leaves the ready index at once, as
 * after an empty fetch: a poll of the index while that job runs no longer lists it.
 * (A failed job's retry, a stalled one's recovery and an enqueue list it again.)
 * take(ready, activeTenants, finished, ARGV, i) reads 8 arguments from ARGV[i]: tenant,
 * '1' to announce, the queue's job prefix (`P:{tag}:Q.`), keepCompleted, the partition's
 * key prefix (`P:{tag}:Q.T:`), now, the lock token and the lock duration (ms).
 */
const TAKE_FUNCTION = `${SETTLE}
local function announce(activeTenants, a, i)
  -- GT: a process whose clock lags never moves an announcement back in time.
  if a[i + 1] == '1' then redis.call('ZADD', activeTenants, 'GT', a[i + 5], a[i]) end
end
${FETCH_NEXT}-- A job taken was its partition's last one waiting when nothing is left in wait either,
-- given what fetchNext learnt (jobs left in prioritized, delayed jobs left; nil for a job
-- that BullMQ's own moveToFinished took: then Redis is asked). The paused list is not
-- asked after fetchNext: BullMQ 6 adds no job to it (only an older BullMQ's pause left
-- jobs there, which a resume moves back), and fetchNext takes none from it either.
local function markLast(taken, prioritizedLeft, delayedLeft, ready, prefix, tenant)
  if prioritizedLeft == nil then
    if waiting(prefix) or redis.call('ZCARD', prefix .. 'delayed') > 0 then return taken end
  elseif prioritizedLeft or delayedLeft > 0 or redis.call('LLEN', prefix .. 'wait') > 0 then
    return taken
  end
  redis.call('ZREM', ready, tenant)
  taken[5] = 1
  return taken
end
local function take(ready, activeTenants, finished, a, i)
  local tenant, prefix, now = a[i], a[i + 4], a[i + 5]
  announce(activeTenants, a, i)
  local taken, prioritizedLeft, delayedLeft = fetchNext(prefix, now, {token = a[i + 6], lockDuration = a[i + 7]})
  taken = taken or {0, 0, 0, 0}
  if type(taken[1]) == 'table' then return markLast(taken, prioritizedLeft, delayedLeft, ready, prefix, tenant) end
  settle(ready, prefix, finished, tenant, a[i + 2], tonumber(a[i + 3]))
  return taken
end
`;

/** KEYS: ready, activeTenants, finished (of the tenant's shard). ARGV: take's 8 arguments. */
const TAKE = `${TAKE_FUNCTION}
return take(KEYS[1], KEYS[2], KEYS[3], ARGV, 1)`;

/**
 * Run after each stalled sweep of a partition (and so also after a process died
 * between moving a job and announcing it): lists the tenant as ready when it has
 * waiting or delayed jobs, and forgets it as "active" once nothing is active or
 * suspected stalled and no fetch announced it within the grace period — retiring its
 * events and completed jobs then (RETIRE). The grace covers the moment between a
 * fetch's announcement and its fetchNext.
 */
const RECONCILE = `${RETIRE}
-- KEYS: ready, wait, prioritized, delayed, paused, active, stalled, activeTenants, events, completed, finished
-- ARGV: tenant, now, graceMs, queue job prefix (P:Q.), keepCompleted
local waiting = redis.call('LLEN', KEYS[2]) > 0 or redis.call('ZCARD', KEYS[3]) > 0 or redis.call('LLEN', KEYS[5]) > 0
if waiting then
  redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
else
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', KEYS[1], 'LT', math.floor(tonumber(first[2]) / 4096), ARGV[1])
  end
end
local announced = tonumber(redis.call('ZSCORE', KEYS[8], ARGV[1]) or '0')
if redis.call('LLEN', KEYS[6]) == 0 and redis.call('SCARD', KEYS[7]) == 0
    and announced < tonumber(ARGV[2]) - tonumber(ARGV[3]) then
  redis.call('ZREM', KEYS[8], ARGV[1])
  if not waiting then retire(KEYS[9], KEYS[10], KEYS[11], ARGV[4], ARGV[1], tonumber(ARGV[5])) end
  return 0
end
return 1`;

/** Counts a job into its batch once, however often the same jobId is enqueued. */
const BATCH_ADD = `
-- KEYS: job hash, batch hash   ARGV: ttl ms of the batch hash
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HSETNX', KEYS[1], 'fleetBatchCounted', 1) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`;

/**
 * Counts a finished job into its batch, in the MULTI right after BullMQ's
 * moveToFinished: only if that call finished it (the job hash holds the `finishedOn`
 * it was given), and only once (a marker on the job hash).
 */
const BATCH_SETTLE = `
-- KEYS: job hash, batch hash   ARGV: 'completed' | 'failed', finishedOn, ttl ms of the batch hash
if redis.call('HGET', KEYS[1], 'finishedOn') ~= ARGV[2] then
  return 0
end
if redis.call('HSETNX', KEYS[1], 'fleetBatchSettled', 1) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`;

/**
 * finish (job-moves.ts) completing a job, then — only if it finished it — TAKE on
 * a partition of the same shard (another tenant's), in one call: the fleet worker
 * completes a job and claims the next job of the tenant it picks in one round trip, as a
 * plain BullMQ Worker does within its one queue. Given the finished job's tenant (its
 * job was the last one waiting when taken), retire its partition too (settleLast: its
 * ready-index entry went when that job was taken).
 * KEYS: TAKE's 3. ARGV: the finished job's partition key prefix, its tenant or '',
 * finish's 8 arguments (not taking a next job), then TAKE's 8.
 * Replies `{finished}` when finish refused (a negative code), else `{finished, taken}`.
 */
const FINISH_AND_TAKE = `${TAKE_FUNCTION}${FINISH}
local t = 11
local finished = finish(ARGV[1], ARGV, 3, KEYS[3], ARGV[t + 2])
if type(finished) == 'number' and finished < 0 then
  return {finished}
end
if ARGV[2] ~= '' then settleLast(KEYS[1], ARGV[1], KEYS[3], ARGV[2], ARGV[t + 2], tonumber(ARGV[t + 3])) end
return {finished, take(KEYS[1], KEYS[2], KEYS[3], ARGV, t)}`;

/**
 * finish (job-moves.ts) with fetch-next completing a job, as a plain BullMQ Worker
 * calls BullMQ's moveToFinished, between TAKE's announcement and its SETTLE when no next job was taken: a
 * turn's completions cost Redis what a plain Worker's do, and the one that finds the
 * partition empty settles its ready-index entry in the same call. Without fetch-next it
 * completes and retires the partition (settleLast): the end of a turn whose last job was
 * the last one waiting.
 * KEYS: TAKE's 3. ARGV: finish's 8, then TAKE's 8 (its lock unused: finish's is taken).
 * Replies as finish does, a job taken marked as TAKE marks it.
 */
const FINISH_NEXT = `${TAKE_FUNCTION}${FINISH}
local t = 9
announce(KEYS[2], ARGV, t)
local finished, prioritizedLeft, delayedLeft = finish(ARGV[t + 4], ARGV, 1, KEYS[3], ARGV[t + 2])
if type(finished) == 'table' and type(finished[1]) == 'table' then
  return markLast(finished, prioritizedLeft, delayedLeft, KEYS[1], ARGV[t + 4], ARGV[t])
end
if ARGV[4] == '0' then
  if finished == 0 then settleLast(KEYS[1], ARGV[t + 4], KEYS[3], ARGV[t], ARGV[t + 2], tonumber(ARGV[t + 3])) end
elseif finished == 0 or type(finished) == 'table' then
  settle(KEYS[1], ARGV[t + 4], KEYS[3], ARGV[t], ARGV[t + 2], tonumber(ARGV[t + 3]))
end
return finished`;

/**
 * Sets or lifts BullMQ's global concurrency of many partitions of one shard
 * (partition/caps.ts). KEYS: their `meta` hashes. ARGV[i]: KEYS[i]'s cap, '' to lift it.
 * Replies how many caps changed (a cap set again to its value is no change).
 */
const SET_CAPS = `
local changed = 0
for i, meta in ipairs(KEYS) do
  local cap = ARGV[i]
  if cap == '' then
    changed = changed + redis.call('HDEL', meta, 'concurrency')
  elseif redis.call('HGET', meta, 'concurrency') ~= cap then
    redis.call('HSET', meta, 'concurrency', cap)
    changed = changed + 1
  end
end
return changed`;

/** The scripts as ioredis commands (on the client and on its MULTIs). */
export interface FleetCommands {
  fleetFinishAndTake(...args: (string | number | Buffer)[]): Promise<unknown[]>;
  fleetTake(...args: (string | number | Buffer)[]): Promise<unknown[]>;
  fleetFinishNext(...args: (string | number | Buffer)[]): Promise<unknown>;
  fleetReconcile(...args: (string | number)[]): Promise<number>;
  fleetBatchAdd(...args: (string | number)[]): Promise<number>;
  fleetBatchSettle(...args: (string | number)[]): Promise<number>;
  /** Its first argument is the number of keys. */
  fleetSetCaps(...args: (string | number)[]): Promise<number>;
}

/**
 * A MULTI carrying the fleet commands besides the usual ones. Opened on a BullMQ client,
 * whose MULTI takes `hset`'s fields as an object only (and `hscan`, `sscan` options as an
 * object): typed so, a field and a value given as arguments do not compile.
 */
export type FleetMulti = Omit<ChainableCommander, 'hset' | 'hscan' | 'sscan'> & {
  hset(key: string, fields: Record<string, string | number>): FleetMulti;
} & {
  [K in keyof FleetCommands]: (...args: (string | number)[]) => FleetMulti;
};

/** Without `numberOfKeys`, the caller passes the number of keys first. */
const SCRIPTS: Record<keyof FleetCommands, { numberOfKeys?: number; lua: string }> = {
  fleetFinishAndTake: { numberOfKeys: 3, lua: FINISH_AND_TAKE },
  fleetTake: { numberOfKeys: 3, lua: TAKE },
  fleetFinishNext: { numberOfKeys: 3, lua: FINISH_NEXT },
  fleetReconcile: { numberOfKeys: 11, lua: RECONCILE },
  fleetBatchAdd: { numberOfKeys: 2, lua: BATCH_ADD },
  fleetBatchSettle: { numberOfKeys: 2, lua: BATCH_SETTLE },
  fleetSetCaps: { lua: SET_CAPS },
};

/** Defines the scripts on `redis` (once) and returns it typed with them. */
export function withFleetCommands(redis: Redis): Redis & FleetCommands {
  const commands = redis as Redis & FleetCommands;
  for (const [name, definition] of Object.entries(SCRIPTS))
    if (typeof (commands as unknown as Record<string, unknown>)[name] !== 'function')
      redis.defineCommand(name, definition);
  return commands;
}
