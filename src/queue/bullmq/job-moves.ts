/**
 * The fleet's own job moves on a partition, in Lua: taking a job into active and
 * completing one, on the job's path. They keep BullMQ's data as BullMQ keeps it (the same
 * keys, job-hash fields, lock, stalled set, retention, metrics and return codes), so that
 * BullMQ's other scripts (enqueue, retry, stalled sweep) and bull-board see no difference,
 * and they take BullMQ's own arguments, so the engine builds them with BullMQ's backend.
 *
 * What they leave out is what no part of the fleet uses on a partition, each a Redis call
 * per job in BullMQ's general scripts: the partition's `events` stream (nothing reads it,
 * see scripts.ts RETIRE), the marker that wakes BullMQ Workers (the fleet runs none on
 * partitions), and the checks for flows and deduplication (the fleet enqueues neither).
 * A completion that is not such a plain one (a job with a parent or a deduplication id,
 * retention by age, a failure) runs BullMQ's own moveToFinished, unchanged.
 *
 * docs/ARCHITECTURE.md § "BullMQ engine" describes where these run.
 */
import { createRequire } from 'node:module';

/** The Lua text of one of the BullMQ scripts this package's BullMQ ships. */
export function bullMqScript(file: string, name: string): string {
  const module = createRequire(import.meta.url)(`bullmq/dist/cjs/scripts/${file}.js`) as Record<
    string,
    { content: string }
  >;
  const content = module[name]?.content;
  if (typeof content !== 'string') throw new Error(`BullMQ script ${file} (${name}) not found`);
  return content;
}

/**
 * `fetchNext(wait, active, prioritized, limiter, delayed, meta, pc, prefix, now, opts)`:
 * BullMQ's fetch of a queue's next job (moveToActive, and moveToFinished's fetch-next) in
 * BullMQ's order: read pause, global concurrency and rate limit from `meta`; promote due
 * delayed jobs; then the oldest of `wait`, else the first of `prioritized`, locked with
 * `opts.token` for `opts.lockDuration` ms. Replies as BullMQ does: `{job hash, id, 0, 0}`,
 * `{0, 0, rate-limit ttl, 0}`, `{0, 0, 0, 0}` when paused or at its concurrency, `{0, 0, 0,
 * first delayed due time}`, or nil when nothing waits nor is delayed.
 */
const FETCH_NEXT = `
local rcall = redis.call
local function promote(delayed, wait, prioritized, pc, prefix, now)
  local due = rcall('ZRANGEBYSCORE', delayed, 0, (now + 1) * 0x1000 - 1, 'LIMIT', 0, 1000)
  if #due == 0 then return end
  rcall('ZREM', delayed, unpack(due))
  for _, id in ipairs(due) do
    local jobKey = prefix .. id
    local priority = tonumber(rcall('HGET', jobKey, 'priority')) or 0
    if priority == 0 then
      rcall('LPUSH', wait, id)
    else
      rcall('ZADD', prioritized, priority * 0x100000000 + rcall('INCR', pc) % 0x100000000, id)
    end
    rcall('HSET', jobKey, 'delay', 0)
  end
end
local function rateLimitTtl(maxJobs, limiter)
  if maxJobs and maxJobs <= tonumber(rcall('GET', limiter) or 0) then
    local pttl = rcall('PTTL', limiter)
    if pttl == 0 then rcall('DEL', limiter) end
    if pttl > 0 then return pttl end
  end
  return 0
end
local function prepare(prefix, limiter, id, now, maxJobs, limiterDuration, opts)
  local jobKey = prefix .. id
  if maxJobs and rcall('HEXISTS', jobKey, 'defa') == 0 then
    if tonumber(rcall('INCR', limiter)) == 1 then
      rcall('PEXPIRE', limiter, math.floor(math.abs(limiterDuration)))
    end
  end
  if opts['token'] ~= '0' then rcall('SET', jobKey .. ':lock', opts['token'], 'PX', opts['lockDuration']) end
  if opts['name'] then
    rcall('HSET', jobKey, 'processedOn', now, 'pb', opts['name'])
  else
    rcall('HSET', jobKey, 'processedOn', now)
  end
  rcall('HINCRBY', jobKey, 'ats', 1)
  return {rcall('HGETALL', jobKey), id, 0, 0}
end
local function fetchNext(wait, active, prioritized, limiter, delayed, meta, pc, prefix, now, opts)
  local queue = rcall('HMGET', meta, 'paused', 'concurrency', 'max', 'duration')
  local blocked = queue[1] ~= false
  if not blocked and queue[2] then blocked = rcall('LLEN', active) >= tonumber(queue[2]) end
  promote(delayed, wait, prioritized, pc, prefix, now)
  local limits = opts['limiter']
  local maxJobs = tonumber(queue[3] or (limits and limits['max']))
  local ttl = rateLimitTtl(maxJobs, limiter)
  if ttl > 0 then return {0, 0, ttl, 0} end
  if blocked then return {0, 0, 0, 0} end
  local limiterDuration = (limits and limits['duration']) or queue[4]
  local id = rcall('RPOPLPUSH', wait, active)
  -- A BullMQ 4 marker in the wait list: not a job.
  if id and string.sub(id, 1, 2) == '0:' then
    rcall('LREM', active, 1, id)
    id = rcall('RPOPLPUSH', wait, active)
  end
  if not id then
    local first = rcall('ZPOPMIN', prioritized)
    if #first > 0 then
      id = first[1]
      rcall('LPUSH', active, id)
    else
      rcall('DEL', pc)
    end
  end
  if id then return prepare(prefix, limiter, id, now, maxJobs, limiterDuration, opts) end
  local next = rcall('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if next[2] then return {0, 0, 0, tonumber(next[2]) / 0x1000} end
end
`;

/**
 * `moveToActive(KEYS, ARGV)`: BullMQ's moveToActive-11, with its keys and arguments (KEYS:
 * wait, active, prioritized, events, stalled, limiter, delayed, paused, meta, pc, marker;
 * ARGV: key prefix, now, packed options), replying as it does.
 */
export const MOVE_TO_ACTIVE = `${FETCH_NEXT}
local function moveToActive(KEYS, ARGV)
  return fetchNext(KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7], KEYS[9], KEYS[10], ARGV[1], ARGV[2],
    cmsgpack.unpack(ARGV[3])) or {0, 0, 0, 0}
end
`;

/**
 * BullMQ's per-minute metrics of finished jobs (its collectMetrics): an exact count in
 * `key`, and one data point per minute in `key:data`, at most `maxPoints`.
 */
const COLLECT_METRICS = `
local function collectMetrics(key, maxPoints, now)
  local count = rcall('HINCRBY', key, 'count', 1) - 1
  local previous = rcall('HGET', key, 'prevTS')
  if not previous then
    rcall('HSET', key, 'prevTS', now, 'prevCount', 0)
    return
  end
  local minutes = math.min(math.floor(now / 60000) - math.floor(previous / 60000), tonumber(maxPoints))
  if minutes <= 0 then return end
  local points = key .. ':data'
  rcall('LPUSH', points, count - rcall('HGET', key, 'prevCount'))
  for _ = 2, minutes do rcall('LPUSH', points, 0) end
  rcall('LTRIM', points, 0, maxPoints - 1)
  rcall('HSET', key, 'prevCount', count, 'prevTS', now)
end
`;

/**
 * `finish(KEYS, ARGV)`: BullMQ's moveToFinished-14, with its keys and arguments, replying
 * as it does; a plain completion the fleet's way (the header), anything else BullMQ's.
 * Requires MOVE_TO_ACTIVE before it (its fetch-next).
 */
export const FINISH = `${COLLECT_METRICS}
local function bullMqFinish(KEYS, ARGV)
${bullMqScript('moveToFinished-14', 'moveToFinished')}
end
local function removeJobKeys(jobKey)
  rcall('DEL', jobKey, jobKey .. ':logs', jobKey .. ':dependencies', jobKey .. ':processed',
    jobKey .. ':failed', jobKey .. ':unsuccessful')
end
local function finish(KEYS, ARGV)
  local jobKey, id, now = KEYS[12], ARGV[1], ARGV[2]
  local opts = cmsgpack.unpack(ARGV[8])
  local keep = opts['keepJobs']
  local job = rcall('HMGET', jobKey, 'name', 'parentKey', 'deid')
  if ARGV[5] ~= 'completed' or keep['age'] ~= nil or job[2] or job[3] then return bullMqFinish(KEYS, ARGV) end
  if not job[1] then return -1 end
  local token = opts['token']
  if token ~= '0' then
    local lock = rcall('GET', jobKey .. ':lock')
    if lock ~= token then return lock and -6 or -2 end
    rcall('DEL', jobKey .. ':lock')
    rcall('SREM', KEYS[5], id)
  end
  if ARGV[9] ~= '' then
    local fields = cmsgpack.unpack(ARGV[9])
    if fields then rcall('HMSET', jobKey, unpack(fields)) end
  end
  if rcall('LREM', KEYS[2], -1, id) < 1 then return -3 end
  rcall('HINCRBY', jobKey, 'atm', 1)
  local count = keep['count']
  if count == 0 then
    removeJobKeys(jobKey)
  else
    rcall('ZADD', KEYS[11], now, id)
    rcall('HSET', jobKey, ARGV[3], ARGV[4], 'finishedOn', now)
    if count ~= nil and count > 0 then
      local old = rcall('ZREVRANGE', KEYS[11], count, -1)
      if #old > 0 then
        for _, oldId in ipairs(old) do removeJobKeys(ARGV[7] .. oldId) end
        rcall('ZREMRANGEBYRANK', KEYS[11], 0, -(count + 1))
      end
    end
  end
  local maxPoints = opts['maxMetricsSize']
  if maxPoints ~= nil and maxPoints ~= '' then collectMetrics(KEYS[13], maxPoints, now) end
  if ARGV[6] == '1' then
    local taken = fetchNext(KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7], KEYS[9], KEYS[10], ARGV[7], now, opts)
    if taken then return taken end
  end
  return 0
end
`;
