/**
 * The fleet budget's lease stores as test fixtures, so one suite runs over both: how a
 * test names the store in `fleetBudget`, and how it reads (and plants) leases and tickets
 * in it directly, the way another process would see them.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { ensureSql, ident } from '../../../src/tenancy/pool/fleet-budget/postgres/lease-sql.js';
import { fleetKeys, serverKeys, TAKE } from '../../../src/tenancy/pool/fleet-budget/redis/lease-scripts.js';
import { PG_URL, REDIS_URL } from '../../support/services.js';

/** One lease store, reached directly. */
export interface LeaseStoreCase {
  readonly name: 'redis' | 'postgres';
  /** The `fleetBudget` option naming the store (the shared server, or `url`). */
  option(url?: string): { redis: string } | { postgres: string };
  /** Leases in the store for `server`, expired ones included until a step drops them. */
  leaseIds(prefix: string, server: string): Promise<string[]>;
  /** Tickets queued for `server`. */
  queued(prefix: string, server: string): Promise<number>;
  /** Takes lease `id` as a process that then dies would (never renewed). */
  takeDead(prefix: string, server: string, id: string, limit: number, ttlMs: number): Promise<void>;
  /** Removes everything the store holds under `prefix`. */
  cleanup(prefix: string): Promise<void>;
  close(): Promise<void>;
}

/** The Redis store on the shared test Redis (or the one at `url`). */
export function redisLeaseStore(url = REDIS_URL): LeaseStoreCase {
  const redis = new Redis(url);
  return {
    name: 'redis',
    option: (other = url) => ({ redis: other }),
    leaseIds: (prefix, server) => redis.zrange(serverKeys(prefix, server).leases, 0, -1),
    queued: (prefix, server) => redis.zcard(serverKeys(prefix, server).queue),
    async takeDead(prefix, server, id, limit, ttlMs) {
      const keys = serverKeys(prefix, server);
      await redis.eval(
        TAKE,
        6,
        keys.leases,
        keys.queue,
        keys.queueExpiry,
        keys.seq,
        ...Object.values(fleetKeys(prefix)),
        id,
        limit,
        ttlMs,
        '',
        0,
        '',
        `${id}:epoch`,
      );
    },
    async cleanup(prefix) {
      const keys = await redis.keys(`{${prefix}}:*`);
      if (keys.length > 0) await redis.unlink(...keys);
    },
    async close() {
      await redis.quit();
    },
  };
}

/**
 * The Postgres store on the shared test Postgres (a schema per prefix). Leases and tickets
 * past their expiry are not counted: the store prunes those rows only at the next take, so
 * one whose release or withdrawal ran past its bound on a busy server stays in the table,
 * lapsed, until someone takes a lease there.
 */
export function postgresLeaseStore(): LeaseStoreCase {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  return {
    name: 'postgres',
    option: (url = PG_URL) => ({ postgres: url }),
    async leaseIds(prefix, server) {
      if (!(await schemaExists(pool, prefix))) return [];
      const { rows } = await pool.query<{ id: string }>(
        `SELECT id FROM ${ident(prefix)}.leases WHERE server = $1 AND expires_at > clock_timestamp() ORDER BY id`,
        [server],
      );
      return rows.map((row) => row.id);
    },
    async queued(prefix, server) {
      if (!(await schemaExists(pool, prefix))) return 0;
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${ident(prefix)}.tickets WHERE server = $1 AND expires_at > clock_timestamp()`,
        [server],
      );
      return rows[0]!.n;
    },
    async takeDead(prefix, server, id, limit, ttlMs) {
      await pool.query(ensureSql(prefix));
      await pool.query(`SELECT * FROM ${ident(prefix)}.take($1, $2, $3, '', $4, '')`, [
        server,
        limit,
        id,
        ttlMs,
      ]);
    },
    async cleanup(prefix) {
      await pool.query(`DROP SCHEMA IF EXISTS ${ident(prefix)} CASCADE`);
    },
    async close() {
      await pool.end();
    },
  };
}

async function schemaExists(pool: pg.Pool, schema: string): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return rows.length > 0;
}
