/**
 * The lease protocol in Redis, one atomic Lua script per step. Per database server:
 *
 * - `leases` — a ZSET of lease id → expiry (Redis' own clock, in ms). A lease is one
 *   connection open (or being opened, or closing) somewhere in the fleet. Expired members
 *   are dropped by every script that reads the set, so a crashed process's leases stop
 *   counting within the lease TTL without anyone cleaning up after it.
 * - `queue` — a ZSET of ticket → arrival number: the fleet-wide FIFO of waiters. A lease
 *   that frees goes to the earliest tickets first: a caller may take one only when fewer
 *   tickets are ahead of it than leases are free. `queue-expiry` (ticket → expiry) lets a
 *   dead waiter's ticket lapse like a lease; a live waiter refreshes it on every try.
 * - `seq` — the counter that numbers arrivals.
 *
 * Fleet-wide, `epoch` names the Redis state the leases live in: every process passes the
 * epoch it last saw. A Redis that restarted empty (or failed over without the keys) has
 * none, or another one, than a process that held leases in it: the first such process to
 * call sets `fence` for one lease TTL, during which no lease is granted while the holders
 * re-register theirs at their next renewal. So a lost state does not let the fleet open
 * more connections than the limit while the connections already open are forgotten.
 *
 * Every key of a fleet shares the hash tag `{prefix}`, so the renewal of all a process's
 * leases (one script over several servers) also runs on Redis Cluster.
 */

/** The keys of one server's budget. */
export interface ServerKeys {
  leases: string;
  queue: string;
  queueExpiry: string;
  seq: string;
}

/** The keys of `server`'s budget under `prefix`. */
export function serverKeys(prefix: string, server: string): ServerKeys {
  const base = `{${prefix}}:${server}`;
  return {
    leases: `${base}:leases`,
    queue: `${base}:queue`,
    queueExpiry: `${base}:queue-expiry`,
    seq: `${base}:seq`,
  };
}

/** The fleet-wide keys: the epoch of the lease state and the fence after a lost one. */
export function fleetKeys(prefix: string): { epoch: string; fence: string } {
  return { epoch: `{${prefix}}:epoch`, fence: `{${prefix}}:fence` };
}

/** The channel a released lease is announced on (message: the server). */
export function releasedChannel(prefix: string): string {
  return `${prefix}:released`;
}

/** The channel a process asks the others to close an idle connection on (message: JSON). */
export function wantChannel(prefix: string): string {
  return `${prefix}:want`;
}

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS[e], KEYS[f]: epoch and fence; ARGV[k], ARGV[c]: the epoch the caller knows ('' for
// none) and a new one, used if there is none. Sets the Lua locals epoch and fenced.
const epochCheck = (e: number, f: number, k: number, c: number, ttl: string) => `
local epoch = redis.call('GET', KEYS[${e}])
if not epoch then
  epoch = ARGV[${c}]
  redis.call('SET', KEYS[${e}], epoch)
  if ARGV[${k}] ~= '' then redis.call('SET', KEYS[${f}], '1', 'PX', ${ttl}) end
elseif ARGV[${k}] ~= '' and ARGV[${k}] ~= epoch then
  redis.call('SET', KEYS[${f}], '1', 'PX', ${ttl}, 'NX')
end
local fenced = redis.call('EXISTS', KEYS[${f}]) == 1
`;

const DROP_EXPIRED = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, ticket in ipairs(stale) do redis.call('ZREM', KEYS[2], ticket) end
if #stale > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
`;

/**
 * Takes a lease. KEYS: leases, queue, queue-expiry, seq, epoch, fence. ARGV: lease id,
 * limit, lease TTL, ticket ('' for a caller who will not wait: it only takes a lease nobody
 * queued for), ticket TTL, known epoch, new epoch. Returns `{taken (0|1), leases live
 * after, tickets ahead, epoch}`; a caller with a ticket that got nothing is queued (or
 * stays queued, its ticket refreshed).
 */
export const TAKE = `${NOW}${DROP_EXPIRED}${epochCheck(5, 6, 6, 7, 'ARGV[3]')}
local live = redis.call('ZCARD', KEYS[1])
local free = tonumber(ARGV[2]) - live
local ticket = ARGV[4]
local ahead = redis.call('ZCARD', KEYS[2])
if ticket ~= '' then
  local rank = redis.call('ZRANK', KEYS[2], ticket)
  if rank then ahead = rank end
end
if free > ahead and not fenced then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  if ticket ~= '' then
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('ZREM', KEYS[3], ticket)
  end
  return {1, live + 1, ahead, epoch}
end
if ticket ~= '' then
  if not redis.call('ZSCORE', KEYS[2], ticket) then
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ticket)
  end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ticket)
end
return {0, live, ahead, epoch}
`;

/**
 * Gives a lease back and, when someone is queued, wakes the waiters. KEYS: leases, queue.
 * ARGV: lease id, channel, server. Returns whether the lease was still there.
 */
export const RELEASE = `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[2]) > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return removed
`;

/**
 * Withdraws a waiter's ticket (it timed out, or gave up) and wakes the others: the ones
 * behind it may now be close enough to the head. KEYS: queue, queue-expiry. ARGV: ticket,
 * channel, server.
 */
export const WITHDRAW = `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return removed
`;

/**
 * Renews every lease of one process, over all its servers, in one call. KEYS: epoch,
 * fence, then the leases ZSET of each server. ARGV: lease TTL, known epoch, new epoch,
 * then per server: its limit, how many ids, the ids. A lease that lapsed meanwhile (Redis
 * was unreachable longer than the TTL, or lost its state) is taken again when the server
 * has room, else reported lost. Returns `{epoch, {live, lost ids} per server}`.
 */
export const RENEW = `${NOW}${epochCheck(1, 2, 2, 3, 'ARGV[1]')}
local ttl = tonumber(ARGV[1])
local i = 4
local out = {epoch}
for k = 3, #KEYS do
  local key = KEYS[k]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local limit = tonumber(ARGV[i])
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  local lost = {}
  for j = 1, n do
    local id = ARGV[i]
    i = i + 1
    if redis.call('ZSCORE', key, id) or redis.call('ZCARD', key) < limit then
      redis.call('ZADD', key, now + ttl, id)
    else
      lost[#lost + 1] = id
    end
  end
  out[#out + 1] = {redis.call('ZCARD', key), lost}
end
return out
`;
