/**
 * CPU time per operation, which is far steadier on this machine than wall-clock time:
 * this node process's `process.cpuUsage()`, Redis's own `INFO cpu` (user + sys of the
 * server), and the CPU of every `postgres` process read from /proc (utime + stime), each
 * taken before and after a timed run. Only meaningful with nothing else at work on the
 * machine: the server readings count every client's work.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** CPU microseconds used so far, per side; Postgres per process (backends come and go). */
export interface CpuReading {
  node: number;
  redis: number;
  postgres: Map<number, number>;
}

/** Microseconds per operation, per side and in all. */
export interface CpuPerOp {
  node: number;
  redis: number;
  postgres: number;
  total: number;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

async function redisCpuUs(redis: readonly Redis[]): Promise<number> {
  let seconds = 0;
  for (const server of redis) {
    const info = await server.info('cpu');
    for (const field of ['used_cpu_user', 'used_cpu_sys'])
      seconds += Number(new RegExp(`^${field}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  }
  return seconds * 1e6;
}

/** utime + stime, in microseconds, of every running process whose command is `postgres`, by pid. */
function postgresCpuUs(): Map<number, number> {
  const byPid = new Map<number, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue;
      const fields = stat.slice(close + 2).split(' ');
      // Fields after the command: state is index 0, so utime (14th) and stime (15th) are 11 and 12.
      byPid.set(Number(pid), ((Number(fields[11]) + Number(fields[12])) / USER_HZ) * 1e6);
    } catch {
      // The process ended meanwhile.
    }
  }
  return byPid;
}

/** Reads every side's CPU now; `redis` are the servers to ask (each master of a cluster). */
export async function readCpu(redis: readonly Redis[]): Promise<CpuReading> {
  const { user, system } = process.cpuUsage();
  return { node: user + system, redis: await redisCpuUs(redis), postgres: postgresCpuUs() };
}

/**
 * The CPU a run used per operation, between two readings. Postgres counts the processes
 * alive at the end (from zero for one started during the run); a backend that ended
 * during the run is left out, as /proc no longer has it.
 */
export function cpuPerOp(before: CpuReading, after: CpuReading, ops: number): CpuPerOp {
  const per = (us: number) => Number((us / ops).toFixed(1));
  let postgresUs = 0;
  for (const [pid, us] of after.postgres) postgresUs += us - (before.postgres.get(pid) ?? 0);
  const node = per(after.node - before.node);
  const redis = per(after.redis - before.redis);
  const postgres = per(postgresUs);
  return { node, redis, postgres, total: Number((node + redis + postgres).toFixed(1)) };
}
