/**
 * What the fleet-budget acceptance (acceptance.test.ts) shares with its helpers: the
 * fleet's connections as the server counts them, the Postgres lease store's fault, and
 * what a wait that gave up reports.
 */
import type { Redis } from 'ioredis';
import pg from 'pg';
import { expect } from 'vitest';
import type { Fleet } from '../../../src/fleet.js';
import { PG_URL } from '../../support/services.js';

/** How long each store fault lasts. */
export const OUTAGE_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Run {
  kind: 'postgres' | 'mysql';
  /** The fleet's connections on the server right now. */
  count(): Promise<number>;
  /** Backend ids of the fleet's connections right now. */
  ids(): Promise<number[]>;
  tenants: string[];
  drop(): Promise<void>;
}

/**
 * Rethrows a wait's error with `state` appended, so a CI log says where the run stood; a
 * state that fails or takes over 5 s to read is said as such, never instead of the error.
 */
export function saying(state: () => string | Promise<string>) {
  return async (error: Error): Promise<never> => {
    const said = await Promise.race([
      Promise.resolve().then(state),
      sleep(5_000).then(() => 'its state was not read within 5 s'),
    ]).catch((failure: unknown) => `its state could not be read (${(failure as Error).message})`);
    throw new Error(`${error.message}; ${said}`, { cause: error });
  };
}

/** The jobs that never recorded their run (the first ten), with what the engine says of each. */
export async function unfinished(
  redis: Redis,
  fleet: Fleet,
  queue: string,
  tenantOf: ReadonlyMap<string, string>,
  doneKey: string,
): Promise<string> {
  const done = new Set(await redis.smembers(doneKey));
  const missing = [...tenantOf].filter(([id]) => !done.has(id));
  const shown = await Promise.all(
    missing.slice(0, 10).map(async ([id, tenant]) => {
      const info = await fleet.job(queue, tenant, id);
      return info === null
        ? `${tenant}/${id}: not found`
        : `${tenant}/${id}: ${info.state}, ${info.attemptsMade} failed attempts, error ${info.error?.message ?? 'none'}`;
    }),
  );
  return `${missing.length} of ${tenantOf.size} jobs never ran to the end: ${shown.join('; ')}`;
}

/**
 * Ends every connection of the Postgres lease store (pool and LISTEN) every 100 ms for
 * OUTAGE_MS: steps in flight fail, the processes reconnect, and meanwhile the limit holds.
 * Resolves to the fleet's connections open once it stopped.
 */
export async function killStoreConnections(tag: string, run: Run): Promise<Set<number>> {
  const killer = new pg.Client({ connectionString: PG_URL });
  await killer.connect();
  try {
    const startedAt = Date.now();
    let killed = 0;
    while (Date.now() - startedAt < OUTAGE_MS) {
      // The pids first, then only those: never a filter the planner may order after the kill.
      const { rows } = await killer.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
        [tag],
      );
      const pids = rows.map((row) => row.pid);
      if (pids.length > 0)
        await killer.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      killed += pids.length;
      await sleep(100);
    }
    expect(killed).toBeGreaterThan(0);
    return new Set(await run.ids());
  } finally {
    await killer.end();
  }
}
