import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError } from '../../../src/reporting/errors.js';
import { connect, type RawConnection } from '../../../src/tenancy/drivers/index.js';
import type { TenantConnection } from '../../../src/tenancy/tenant-pools/tenant-connection.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import {
  type MysqlDatabase,
  mysqlDatabase,
  type PgWorld,
  pgWorld,
  sampleMax,
  slugs,
} from '../../support/pools-fixture.js';
import { MYSQL_URL, uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let maria: MysqlDatabase;
let mariaAdmin: RawConnection;

beforeAll(async () => {
  world = await pgWorld();
  maria = await mysqlDatabase();
  mariaAdmin = await connect(MYSQL_URL);
});
afterAll(async () => {
  await mariaAdmin.close();
  await maria.drop();
  await world.cleanup();
});

interface Scenario {
  /** The process's budget (`maxConnections`); the tenant's pool holds at most 2. */
  budget: number;
  /** The tenant database's URL, as the registry records it. */
  url: string;
  /** A statement that runs for seconds. */
  sleep: string;
  /** Sessions of this process the server holds on the tenant database. */
  serverSessions(): Promise<number>;
  /** Sessions running `sleep` right now. */
  sleeping(): Promise<number>;
}

/**
 * Two leases stuck in a long statement (the tenant's pool is full); one is released with
 * an error and its place taken by a third lease that starts sleeping too; then the pools
 * close by force and a second TenantPools of the same process opens connections again.
 */
async function abortedJobs(s: Scenario): Promise<{ max: number; samples: number; errors: unknown[] }> {
  const [slug] = slugs('abandon', 1) as [string];
  await world.addOrgs([{ slug, storageMode: 'database', databaseUrl: s.url }]);
  const options = {
    registry: world.registry,
    maxConnections: s.budget,
    perTenantMaxConnections: 2,
    closeTimeoutMs: 50,
  };
  const sampler = sampleMax(s.serverSessions, { intervalMs: 20 });
  const stuck: Promise<unknown>[] = [];
  const sleepOn = (db: TenantConnection) =>
    stuck.push(
      db.query(s.sleep).then(
        () => 'finished',
        (err) => err,
      ),
    );
  try {
    const first = await TenantPools.open(options);
    const leases = [await first.acquire(slug), await first.acquire(slug)];
    for (const db of leases) sleepOn(db);
    await until(async () => (await s.sleeping()) === 2, 'two sleeping sessions');
    leases[0]?.release(new Error('job aborted'));
    const third = await first.acquire(slug);
    sleepOn(third);
    await until(async () => (await s.sleeping()) >= 1, 'the third lease sleeping');
    await first.close();
    const afterClose = await third.query('select 1').then(
      () => 'answered',
      (err) => err,
    );
    const second = await TenantPools.open(options);
    const again = [await second.acquire(slug), await second.acquire(slug)];
    for (const db of again) await db.query('select 1');
    for (const db of again) db.release();
    await second.close();
    return { ...(await sampler.stop()), errors: [...(await Promise.all(stuck)), afterClose] };
  } finally {
    await sampler.stop();
  }
}

describe('an abandoned statement', () => {
  it('postgres: is cancelled, and pg_stat_activity never shows more sessions than the budget', async () => {
    const tenant = await world.createDatabase('tp_abandon');
    const tag = uniqueName('abandon');
    const count = async (filter: string) =>
      Number(
        (
          await world.admin.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 ${filter}`,
            [tag],
          )
        )[0]?.n,
      );
    const result = await abortedJobs({
      budget: 2,
      url: `${tenant.url}?application_name=${tag}`,
      sleep: 'select pg_sleep(6)',
      serverSessions: () => count(''),
      sleeping: () => count(`AND query LIKE 'select pg_sleep%' AND state = 'active'`),
    });
    // The sampler saw the two stuck sessions (it is not vacuous), and never more than the budget.
    expect(result.max).toBe(2);
    // Every statement given up on was stopped, not run to its end, and the caller saw a ClosedError.
    expect(result.errors).toHaveLength(4);
    for (const err of result.errors) expect(err).toBeInstanceOf(ClosedError);
    expect(await count('')).toBe(0);
  });

  it('mariadb: is killed from a budgeted session; the processlist never shows more than the budget', async () => {
    const count = async (filter: string) =>
      Number(
        (
          await mariaAdmin.query<{ n: number }>(
            `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? ${filter}`,
            [maria.name],
          )
        )[0]?.n,
      );
    const result = await abortedJobs({
      // MariaDB stops a statement only from another session, which the budget pays for:
      // one slot beyond what the tenant's pool can hold.
      budget: 3,
      url: maria.url,
      sleep: 'SELECT SLEEP(6)',
      serverSessions: () => count(''),
      sleeping: () => count(`AND INFO LIKE 'SELECT SLEEP%'`),
    });
    expect(result.max).toBeGreaterThanOrEqual(2);
    expect(result.max).toBeLessThanOrEqual(3);
    expect(result.errors).toHaveLength(4);
    // None ran to its end: each was killed, and its caller saw a ClosedError.
    for (const err of result.errors) expect(err).toBeInstanceOf(ClosedError);
    expect(await count('')).toBe(0);
  });
});

describe('an abandoned statement with the budget full', () => {
  it('mariadb: keeps its slot until the server ended the session; the processlist stays within the budget', async () => {
    // No idle connection and no free slot to kill it from: it runs to its end, and the
    // slot moves only once the server has let the session go.
    const count = async (filter: string) =>
      Number(
        (
          await mariaAdmin.query<{ n: number }>(
            `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? ${filter}`,
            [maria.name],
          )
        )[0]?.n,
      );
    const result = await abortedJobs({
      budget: 2,
      url: maria.url,
      sleep: 'SELECT SLEEP(4)',
      serverSessions: () => count(''),
      sleeping: () => count(`AND INFO LIKE 'SELECT SLEEP%'`),
    });
    expect(result.max).toBe(2);
    expect(await count('')).toBe(0);
  });
});
