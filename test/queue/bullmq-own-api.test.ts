/**
 * Jobs put into a partition through BullMQ's own `Queue` / `Job` API (what bull-board's
 * buttons and a hand-written script call) never touch the fleet's ready index: the
 * engine's marker sweep must hear of them, so that a fleet worker runs them.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { partitionName } from '../../src/queue/bullmq/partition/partitions.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from '../worker/support.js';
import { deletePrefix } from './engines.js';

/**
 * The bound only keeps a broken sweep from hanging the suite. The sweep SCANs the whole
 * keyspace, 1,000 keys per step and at most a step per 500 ms, so on the shared Redis of
 * a full test run (hundreds of thousands of other suites' keys) a cycle can take tens of
 * seconds: it ran over 15 s once.
 */
const WITHIN = { timeoutMs: 90_000, intervalMs: 20 };

describe('BullMQ engine: jobs put in with BullMQ’s own API', { timeout: 300_000 }, () => {
  let reg: RegistryFixture;
  let tenant = '';
  const prefix = uniqueName('fleet-own');
  let fleet: Fleet;
  const queue = uniqueName('q');
  const ran: string[] = [];
  let bull: Queue;

  beforeAll(async () => {
    reg = await openRegistry();
    tenant = (await reg.addTenants(1, {}, 'own'))[0]!;
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    fleet = await Fleet.open({ engine, registry: reg.registry });
    fleet.worker(
      queue,
      async (job) => {
        ran.push(job.id);
        if ((job.data as { fail?: boolean }).fail) throw new Error('planned failure');
      },
      { borrowConnection: false },
    );
    bull = new Queue(partitionName(queue, tenant), {
      connection: { url: REDIS_URL },
      prefix: engine.partitionPrefix(queue, tenant),
    });
  });

  afterAll(async () => {
    await bull?.close();
    await fleet?.close();
    await deletePrefix(prefix);
    await reg?.cleanup();
  });

  it('runs a job added with Queue.add', async () => {
    const job = await bull.add('by-hand', { fail: false });
    await until(() => ran.includes(job.id!), 'the added job to run', WITHIN);
    expect((await fleet.job(queue, tenant, job.id!))?.state).toBe('completed');
  });

  it('runs a failed job again after Job.retry()', async () => {
    const id = await fleet.enqueue(queue, { tenant, name: 'fails', data: { fail: true } });
    await until(
      async () => (await fleet.job(queue, tenant, id))?.state === 'failed',
      'the job to fail',
      WITHIN,
    );
    // Wait until the worker has found the partition empty and dropped the tenant from the index.
    await until(async () => (await fleet.engine.readyTenants(queue)).length === 0, 'an empty index', WITHIN);
    const runsBefore = ran.filter((r) => r === id).length;
    const job = (await bull.getJob(id))!;
    await job.updateData({ fail: false });
    await job.retry('failed');
    await until(() => ran.filter((r) => r === id).length > runsBefore, 'the retried job to run', WITHIN);
    await until(
      async () => (await fleet.job(queue, tenant, id))?.state === 'completed',
      'completion',
      WITHIN,
    );
  });

  it('runs a delayed job at once after Job.promote()', async () => {
    const id = await fleet.enqueue(queue, { tenant, name: 'later', data: {}, delayMs: 3_600_000 });
    expect((await fleet.job(queue, tenant, id))?.state).toBe('delayed');
    const job = (await bull.getJob(id))!;
    await job.promote();
    await until(() => ran.includes(id), 'the promoted job to run', WITHIN);
    await until(
      async () => (await fleet.job(queue, tenant, id))?.state === 'completed',
      'completion',
      WITHIN,
    );
  });
});
