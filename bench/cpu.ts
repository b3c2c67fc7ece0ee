/**
 * CPU time per operation, which is far steadier on this machine than wall-clock time:
 * this node process's `process.cpuUsage()`, Redis's own `INFO cpu` (user + sys of the
 * server), and the CPU of every `postgres` process read from /proc (utime + stime), each
 * taken before and after a timed run. Only meaningful with nothing else at work on the
 * machine: the server readings count every client's work.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** CPU microseconds used so far, per side. */
export interface CpuReading {
  node: number;
  redis: number;
  postgres: number;
}

/** Microseconds per operation, per side and in all. */
export interface CpuPerOp extends CpuReading {
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

/** utime + stime of every running process whose command is `postgres`. */
function postgresCpuUs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue;
      const fields = stat.slice(close + 2).split(' ');
      // Fields after the command: state is index 0, so utime (14th) and stime (15th) are 11 and 12.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return (ticks / USER_HZ) * 1e6;
}

/** Reads every side's CPU now; `redis` are the servers to ask (each master of a cluster). */
export async function readCpu(redis: readonly Redis[]): Promise<CpuReading> {
  const { user, system } = process.cpuUsage();
  return { node: user + system, redis: await redisCpuUs(redis), postgres: postgresCpuUs() };
}

/** The CPU a run used per operation, between two readings. */
export function cpuPerOp(before: CpuReading, after: CpuReading, ops: number): CpuPerOp {
  const per = (side: keyof CpuReading) => Number(((after[side] - before[side]) / ops).toFixed(1));
  const node = per('node');
  const redis = per('redis');
  const postgres = per('postgres');
  return { node, redis, postgres, total: Number((node + redis + postgres).toFixed(1)) };
}
