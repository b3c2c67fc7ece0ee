/**
 * The few Lua scripts the BullMQ engine adds beside BullMQ's own. Each one reads and
 * writes the ready index together with a partition's BullMQ keys in one atomic step,
 * which is what keeps readiness from being lost when producers and consumers race.
 *
 * Key layout (prefix `P`, logical queue `Q`, partition `Q.T` is a BullMQ queue):
 *   P:Q:ready           ZSET tenant → epoch ms from which it may have a job ready
 *   P:Q:active-tenants  ZSET tenant → when a fetch last found it idle in this process
 *   P:Q:finished        ZSET <tenant>:<id> → finish time: completed jobs of idle partitions
 *   P:#batch:<id>       HASH total / completed / failed; expires `batchTtlMs` after its last change
 * BullMQ's own keys are P:Q.T:wait, :prioritized, :delayed, :active, … ; `#` cannot
 * appear in a queue name, so the batch keys never meet a queue's.
 */
import { createRequire } from 'node:module';
import type { ChainableCommander, Redis } from 'ioredis';

/** The Lua text of one of the BullMQ scripts this package's BullMQ ships. */
function bullMqScript(file: string, name: string): string {
  const module = createRequire(import.meta.url)(`bullmq/dist/cjs/scripts/${file}.js`) as Record<
    string,
    { content: string }
  >;
  const content = module[name]?.content;
  if (typeof content !== 'string') throw new Error(`BullMQ script ${file} (${name}) not found`);
  return content;
}

/**
 * What a partition gives up once it has nothing waiting, so that an idle tenant costs
 * Redis next to nothing whatever it ran before (Lua, prepended to the scripts below):
 * - its BullMQ `events` stream, which no part of the fleet reads (the enqueue sets the
 *   partition's `opts.maxLenEvents` to 0, so a busy partition keeps at most one stream
 *   node; this drops the rest);
 * - its completed jobs, handed over to the logical queue's `finished` set (member
 *   `<tenant>:<id>`, scored by finish time), which keeps the newest `keepCompleted` of
 *   the whole queue and deletes the hashes of older ones. So finished-job retention is
 *   bounded per logical queue plus per partition with work, not per tenant ever seen.
 *   Failed jobs stay in their partition (bounded by `keepFailed`), where an operator
 *   retries them from bull-board.
 */
const RETIRE = `
local function retire(events, completed, finished, jobPrefix, tenant, keep)
  redis.call('DEL', events)
  local done = redis.call('ZRANGE', completed, 0, -1, 'WITHSCORES')
  if #done == 0 then return end
  for i = 1, #done, 2 do
    redis.call('ZADD', finished, done[i + 1], tenant .. ':' .. done[i])
  end
  redis.call('DEL', completed)
  local excess = redis.call('ZCARD', finished) - keep
  if excess > 0 then
    for _, member in ipairs(redis.call('ZRANGE', finished, 0, excess - 1)) do
      -- jobPrefix is P:Q. and the member T:id, so this is the job hash P:Q.T:id.
      redis.call('DEL', jobPrefix .. member)
    end
    redis.call('ZREMRANGEBYRANK', finished, 0, excess - 1)
  end
end
`;

/**
 * After a fetch found nothing: keep the tenant listed if its partition still has a
 * waiting job, move its score to the first delayed job's due time if it has one, and
 * only otherwise remove it. A concurrent enqueue re-adds the tenant in the same MULTI
 * as the job, so whichever runs first, the index ends up right. With nothing waiting,
 * the partition retires its events and completed jobs (RETIRE).
 */
const SETTLE_READY = `${RETIRE}
-- KEYS: ready, wait, prioritized, delayed, paused, events, completed, finished
-- ARGV: tenant, queue job prefix (P:Q.), keepCompleted
if redis.call('LLEN', KEYS[2]) > 0 or redis.call('ZCARD', KEYS[3]) > 0 or redis.call('LLEN', KEYS[5]) > 0 then
  return 1
end
retire(KEYS[6], KEYS[7], KEYS[8], ARGV[2], ARGV[1], tonumber(ARGV[3]))
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if first[2] then
  redis.call('ZADD', KEYS[1], math.floor(tonumber(first[2]) / 4096), ARGV[1])
  return 2
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0`;

/**
 * Run after each stalled sweep of a partition (and so also after a process died
 * between moving a job and announcing it): lists the tenant as ready when it has
 * waiting or delayed jobs, and forgets it as "active" once nothing is active or
 * suspected stalled and no fetch announced it within the grace period — retiring its
 * events and completed jobs then (RETIRE). The grace covers the moment between a
 * fetch's announcement and its moveToActive.
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
 * BullMQ's own moveToFinished on one partition, then — only if it finished the job —
 * BullMQ's own moveToActive on another partition of the same logical queue, in one
 * call: the fleet worker completes a job and claims the first job of the tenant it picks
 * next in one round trip, as a plain BullMQ Worker does within its one queue. Both
 * scripts run unchanged, each wrapped in a function that takes its KEYS and ARGV.
 * KEYS: moveToFinished's 14. ARGV: how many of moveToFinished's arguments come first,
 * those, then moveToActive's, the first of which is the other partition's key prefix
 * (`P:Q.T:`), from which its 11 keys are named here (fewer bytes to send per job).
 * Replies `{finished}` when moveToFinished refused (a negative code), else
 * `{finished, taken}`.
 */
const FINISH_AND_TAKE = `
local function finish(KEYS, ARGV)
${bullMqScript('moveToFinished-14', 'moveToFinished')}
end
local function take(KEYS, ARGV)
${bullMqScript('moveToActive-11', 'moveToActive')}
end
local finishArgs, takeArgs = {}, {}
local count = tonumber(ARGV[1])
for i = 2, count + 1 do finishArgs[#finishArgs + 1] = ARGV[i] end
for i = count + 2, #ARGV do takeArgs[#takeArgs + 1] = ARGV[i] end
local takeKeys = {}
for i, name in ipairs({'wait', 'active', 'prioritized', 'events', 'stalled', 'limiter', 'delayed',
    'paused', 'meta', 'pc', 'marker'}) do
  takeKeys[i] = takeArgs[1] .. name
end
local finished = finish(KEYS, finishArgs)
if type(finished) == 'number' and finished < 0 then
  return {finished}
end
return {finished, take(takeKeys, takeArgs)}`;

/** The scripts as ioredis commands (on the client and on its MULTIs). */
export interface FleetCommands {
  fleetFinishAndTake(...args: (string | number | Buffer)[]): Promise<unknown[]>;
  fleetSettleReady(...args: (string | number)[]): Promise<number>;
  fleetReconcile(...args: (string | number)[]): Promise<number>;
  fleetBatchAdd(...args: (string | number)[]): Promise<number>;
  fleetBatchSettle(...args: (string | number)[]): Promise<number>;
}

/** A MULTI carrying the fleet commands besides the usual ones. */
export type FleetMulti = ChainableCommander & {
  [K in keyof FleetCommands]: (...args: (string | number)[]) => FleetMulti;
};

const SCRIPTS: Record<keyof FleetCommands, { numberOfKeys: number; lua: string }> = {
  fleetFinishAndTake: { numberOfKeys: 14, lua: FINISH_AND_TAKE },
  fleetSettleReady: { numberOfKeys: 8, lua: SETTLE_READY },
  fleetReconcile: { numberOfKeys: 11, lua: RECONCILE },
  fleetBatchAdd: { numberOfKeys: 2, lua: BATCH_ADD },
  fleetBatchSettle: { numberOfKeys: 2, lua: BATCH_SETTLE },
};

/** Defines the scripts on `redis` (once) and returns it typed with them. */
export function withFleetCommands(redis: Redis): Redis & FleetCommands {
  const commands = redis as Redis & FleetCommands;
  for (const [name, definition] of Object.entries(SCRIPTS))
    if (typeof (commands as unknown as Record<string, unknown>)[name] !== 'function')
      redis.defineCommand(name, definition);
  return commands;
}
