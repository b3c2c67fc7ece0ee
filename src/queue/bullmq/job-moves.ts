/**
 * The fleet's own job moves on a partition, in Lua: taking a job into active and
 * completing one, on the job's path. They keep BullMQ's data as BullMQ keeps it (the same
 * keys, job-hash fields, lock, stalled set, metrics and return codes), so that
 * BullMQ's other scripts (enqueue, retry, stalled sweep) and bull-board see no difference
 * but one: a completed job is kept in its logical queue's `finished` set (of its shard),
 * not in the partition's `completed` set, so that retention is per queue whatever the
 * number of tenants busy at once (TRIM_FINISHED); bull-board lists no completed jobs under
 * a partition. Their arguments are plain strings (jobs/finish.ts builds them), no msgpack.
 *
 * What they leave out is what no part of the fleet uses on a partition, each a Redis call
 * per job in BullMQ's general scripts: the partition's `events` stream (nothing reads it,
 * see scripts.ts RETIRE), the marker that wakes BullMQ Workers (the fleet runs none on
 * partitions), and the checks for flows and deduplication (the fleet enqueues neither).
 * A completion of a job with a parent or a deduplication id runs BullMQ's own
 * moveToFinished, unchanged; failures always go through BullMQ's (jobs/finish.ts failJob).
 *
 * docs/ARCHITECTURE.md § "BullMQ engine" describes where these run.
 */
import { createRequire } from 'node:module';

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
 * `fetchNext(prefix, now, opts)`: BullMQ's fetch of a queue's next job (moveToActive, and
 * moveToFinished's fetch-next) on the partition whose keys start with `prefix`: read pause,
 * global concurrency and rate limit from `meta`; promote due delayed jobs; then the first
 * of `prioritized`, else the oldest of `wait` (BullMQ takes `wait` first; the fleet's
 * contract runs unprioritised jobs after prioritised ones), locked with `opts.token` for
 * `opts.lockDuration` ms. Replies as BullMQ does: `{job hash, id, 0, 0}`, `{0, 0, rate-limit
 * ttl, 0}`, `{0, 0, 0, 0}` when paused or at its concurrency, `{0, 0, 0, first delayed due
 * time}`, or nil when nothing waits nor is delayed. A job taken comes with what the fetch
 * learnt on the way, for markLast (scripts.ts) to tell whether it was the last without
 * asking Redis again: whether `prioritized` still holds jobs, and how many are delayed.
 */
export const FETCH_NEXT = `
local rcall = redis.call
local function promote(delayed, prefix, now)
  -- How many stay delayed: counted first, so that the common case (none) is one lookup.
  local left = rcall('ZCARD', delayed)
  if left == 0 then return 0 end
  local due = rcall('ZRANGEBYSCORE', delayed, 0, (now + 1) * 0x1000 - 1, 'LIMIT', 0, 1000)
  if #due == 0 then return left end
  rcall('ZREM', delayed, unpack(due))
  for _, id in ipairs(due) do
    local jobKey = prefix .. id
    local priority = tonumber(rcall('HGET', jobKey, 'priority')) or 0
    if priority == 0 then
      rcall('LPUSH', prefix .. 'wait', id)
    else
      rcall('ZADD', prefix .. 'prioritized', priority * 0x100000000 + rcall('INCR', prefix .. 'pc') % 0x100000000, id)
    end
    rcall('HSET', jobKey, 'delay', 0)
  end
  return left - #due
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
local function fetchNext(prefix, now, opts)
  local active, prioritized, delayed = prefix .. 'active', prefix .. 'prioritized', prefix .. 'delayed'
  local queue = rcall('HMGET', prefix .. 'meta', 'paused', 'concurrency', 'max', 'duration')
  local blocked = queue[1] ~= false
  if not blocked and queue[2] then blocked = rcall('LLEN', active) >= tonumber(queue[2]) end
  local delayedLeft = promote(delayed, prefix, now)
  local limits = opts['limiter']
  local maxJobs = tonumber(queue[3] or (limits and limits['max']))
  local limiter = maxJobs and prefix .. 'limiter'
  local ttl = rateLimitTtl(maxJobs, limiter)
  if ttl > 0 then return {0, 0, ttl, 0} end
  if blocked then return {0, 0, 0, 0} end
  local limiterDuration = (limits and limits['duration']) or queue[4]
  local id
  local prioritizedLeft = false
  local first = rcall('ZPOPMIN', prioritized)
  if #first > 0 then
    id = first[1]
    rcall('LPUSH', active, id)
    prioritizedLeft = rcall('EXISTS', prioritized) == 1
    if not prioritizedLeft then rcall('DEL', prefix .. 'pc') end
  else
    local wait = prefix .. 'wait'
    id = rcall('RPOPLPUSH', wait, active)
    -- A BullMQ 4 marker in the wait list: not a job.
    if id and string.sub(id, 1, 2) == '0:' then
      rcall('LREM', active, 1, id)
      id = rcall('RPOPLPUSH', wait, active)
    end
  end
  if id then
    return prepare(prefix, limiter, id, now, maxJobs, limiterDuration, opts), prioritizedLeft, delayedLeft
  end
  if delayedLeft == 0 then return end
  local next = rcall('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  return {0, 0, 0, tonumber(next[2]) / 0x1000}
end
`;

/**
 * `trimFinished(finished, jobPrefix, keep)`: keeps the newest `keep` completed jobs of a
 * logical queue's shard in its `finished` set (member `<tenant>:<id>`, scored by finish
 * time) and deletes the hashes of older ones (`jobPrefix` is the queue's `P:{tag}:Q.`, so
 * `jobPrefix .. member` is the job's hash). At most 1,000 keys per DEL; a negative `keep`
 * keeps all.
 */
export const TRIM_FINISHED = `
local function trimFinished(finished, jobPrefix, keep)
  if keep < 0 then return end
  local excess = redis.call('ZCARD', finished) - keep
  if excess <= 0 then return end
  local members = redis.call('ZRANGE', finished, 0, excess - 1)
  for from = 1, #members, 1000 do
    local hashes = {}
    for i = from, math.min(from + 999, #members) do hashes[#hashes + 1] = jobPrefix .. members[i] end
    redis.call('DEL', unpack(hashes))
  end
  redis.call('ZREMRANGEBYRANK', finished, 0, excess - 1)
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
 * `finish(prefix, a, i, finished, jobPrefix)`: completes a job of the partition with key
 * prefix `prefix` (`P:{tag}:Q.T:`, the queue's `jobPrefix` then the tenant) as BullMQ's
 * moveToFinished-14 does, replying as it does (0, a negative code, or fetchNext's reply),
 * but for where the job is kept: the shard's `finished` set (TRIM_FINISHED). It reads 8
 * plain arguments from `a[i]` (no msgpack: ioredis writes a command of strings alone far
 * more cheaply): the job id, now, the result's JSON, '1' to take the partition's next
 * job, the lock token, the next job's lock duration, how many completed jobs the queue
 * keeps, and the metrics' data points ('' for none). A plain completion goes the fleet's
 * way (the header); a job with a parent or a deduplication id goes BullMQ's, with the
 * arguments BullMQ's would be given (into the partition's `completed` set, which the
 * partition hands over to `finished` once idle: scripts.ts RETIRE). Requires FETCH_NEXT
 * and TRIM_FINISHED before it.
 */
export const FINISH = `${COLLECT_METRICS}
local function bullMqFinish(KEYS, ARGV)
${bullMqScript('moveToFinished-14', 'moveToFinished')}
end
local function removeJobKeys(jobKey)
  rcall('DEL', jobKey, jobKey .. ':logs', jobKey .. ':dependencies', jobKey .. ':processed',
    jobKey .. ':failed', jobKey .. ':unsuccessful')
end
local function bullMqCompletion(prefix, a, i)
  local keys = {}
  for k, name in ipairs({'wait', 'active', 'prioritized', 'events', 'stalled', 'limiter', 'delayed',
      'paused', 'meta', 'pc', 'completed'}) do
    keys[k] = prefix .. name
  end
  keys[12] = prefix .. a[i]
  keys[13] = prefix .. 'metrics:completed'
  keys[14] = prefix .. 'marker'
  local points = a[i + 7] == '' and '' or tonumber(a[i + 7])
  local opts = cmsgpack.pack({token = a[i + 4], keepJobs = {count = tonumber(a[i + 6])},
    lockDuration = tonumber(a[i + 5]), maxMetricsSize = points, fpof = false, cpof = false,
    idof = false, rdof = false})
  return bullMqFinish(keys, {a[i], a[i + 1], 'returnvalue', a[i + 2], 'completed', a[i + 3], prefix, opts, ''})
end
local function finish(prefix, a, i, finished, jobPrefix)
  local id, now, token = a[i], a[i + 1], a[i + 4]
  local jobKey = prefix .. id
  local job = rcall('HMGET', jobKey, 'name', 'parentKey', 'deid', 'atm')
  if job[2] or job[3] then return bullMqCompletion(prefix, a, i) end
  if not job[1] then return -1 end
  if token ~= '0' then
    local lock = rcall('GET', jobKey .. ':lock')
    if lock ~= token then return lock and -6 or -2 end
    rcall('DEL', jobKey .. ':lock')
    rcall('SREM', prefix .. 'stalled', id)
  end
  if rcall('LREM', prefix .. 'active', -1, id) < 1 then return -3 end
  local keep = tonumber(a[i + 6])
  if keep == 0 then
    removeJobKeys(jobKey)
  else
    -- atm counted as BullMQ's HINCRBY would, in the same write as the result.
    rcall('HSET', jobKey, 'returnvalue', a[i + 2], 'finishedOn', now, 'atm', (tonumber(job[4]) or 0) + 1)
    -- The member T:id is the job's key after the queue's prefix.
    rcall('ZADD', finished, now, string.sub(jobKey, #jobPrefix + 1))
    if keep > 0 then trimFinished(finished, jobPrefix, keep) end
  end
  if a[i + 7] ~= '' then collectMetrics(prefix .. 'metrics:completed', tonumber(a[i + 7]), now) end
  if a[i + 3] == '1' then
    local taken, prioritizedLeft, delayedLeft = fetchNext(prefix, now, {token = token, lockDuration = a[i + 5]})
    if taken then return taken, prioritizedLeft, delayedLeft end
  end
  return 0
end
`;
