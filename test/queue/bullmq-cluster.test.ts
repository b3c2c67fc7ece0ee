/**
 * What the BullMQ engine promises on Redis Cluster beyond the conformance suite (which
 * runs on the local cluster too): every key of a queue's shard in one slot, shards spread
 * over the masters, SCAN-based work (purge, the marker sweep) reaching every master, and
 * the checks of the cluster options.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { slotOfTag } from '../../src/queue/bullmq/cluster/hash-slot.js';
import { KeyLayout } from '../../src/queue/bullmq/cluster/key-layout.js';
import { partitionName } from '../../src/queue/bullmq/partition/partitions.js';
import { ConfigError } from '../../src/reporting/errors.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { clusterNodes, deletePrefix } from './engines.js';

const LOCK = 30_000;
const TENANTS = Array.from({ length: 30 }, (_, i) => `t${i}`);

/** Every key under `prefix` on each master, as [master index, key]. */
async function keysByMaster(masters: Redis[], prefix: string): Promise<[number, string][]> {
  const found: [number, string][] = [];
  for (const [i, master] of masters.entries()) {
    let cursor = '0';
    do {
      const [next, keys] = await master.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) found.push([i, key]);
    } while (cursor !== '0');
  }
  return found;
}

describe('the BullMQ engine on a three-master Redis Cluster', () => {
  let masters: Redis[];
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(() => {
    masters = clusterNodes().map((url) => new Redis(url));
  });
  afterAll(async () => {
    await Promise.all(masters.map((master) => master.quit()));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  function open(shards: number, prefix = uniqueName('fleetcl')): { engine: BullMqEngine; prefix: string } {
    const engine = new BullMqEngine({
      connection: { cluster: clusterNodes() },
      prefix,
      shards,
      stalledIntervalMs: 100,
    });
    cleanups.push(async () => {
      await engine.close();
      await deletePrefix(prefix, clusterNodes());
    });
    return { engine, prefix };
  }

  it.each([1, 3])(
    'keeps each shard’s keys in one slot, the slot Redis computes (shards: %i)',
    async (shards) => {
      const { engine, prefix } = open(shards);
      await engine.enqueueBulk(
        'q',
        TENANTS.map((tenant) => ({
          tenant,
          name: 'n',
          data: 1,
          batchId: 'b',
          delayMs: tenant === 't0' ? 60_000 : 0,
        })),
      );
      const job = (await engine.fetch('q', 't1', 'w', LOCK))!;
      await engine.complete(job, 'ok');
      const layout = new KeyLayout(prefix, shards);
      const keys = await keysByMaster(masters, prefix);
      const slotsOfShards = new Set<number>();
      for (const [, key] of keys) {
        const slot = await masters[0]!.cluster('KEYSLOT', key);
        if (key === layout.batchShardsKey('b')) continue;
        // Every other key is `P:{tag}:…` and sits in the slot of its tag.
        const tag = key.slice(prefix.length + 2, key.indexOf('}'));
        expect(slot).toBe(slotOfTag(tag));
        expect(layout.queueOfTag(tag)).toBe('q');
        slotsOfShards.add(slot);
      }
      expect(slotsOfShards.size).toBe(shards);
      // The partitions and ready index of a tenant share its shard's slot.
      const tenantSlot = slotOfTag(layout.tag('q', layout.shardOf('t1')));
      for (const key of keys.map(([, k]) => k).filter((k) => k.includes(':q.t1:')))
        expect(await masters[0]!.cluster('KEYSLOT', key)).toBe(tenantSlot);
      expect(await masters[0]!.cluster('KEYSLOT', layout.readyKey('q', layout.shardOf('t1')))).toBe(
        tenantSlot,
      );
      // t0's job is delayed; t1's only job was taken, and t1 left the index with it.
      expect((await engine.readyTenants('q')).sort()).toEqual(
        TENANTS.filter((t) => t !== 't0' && t !== 't1').sort(),
      );
      expect(await engine.batchProgress('b')).toEqual({ total: 30, completed: 1, failed: 0, pending: 29 });
    },
  );

  it('spreads three shards over the three masters, and purges every one of them', async () => {
    const { engine, prefix } = open(3);
    await engine.enqueueBulk(
      'q',
      TENANTS.map((tenant) => ({ tenant, name: 'n', data: 1 })),
    );
    const holders = new Set((await keysByMaster(masters, prefix)).map(([master]) => master));
    expect(holders).toEqual(new Set([0, 1, 2]));
    expect(await engine.purge('q')).toEqual([...TENANTS].sort());
    expect(await keysByMaster(masters, prefix)).toEqual([]);
    expect(await engine.readyTenants('q')).toEqual([]);
  });

  it('purges one tenant of every queue it is in, on whichever masters they live', async () => {
    const { engine } = open(3);
    for (const queue of ['a', 'b', 'c']) await engine.enqueue(queue, { tenant: 't7', name: 'n', data: 1 });
    await engine.enqueue('a', { tenant: 't8', name: 'n', data: 1 });
    expect(await engine.purgeTenant('t7')).toEqual(['a', 'b', 'c']);
    expect(await engine.counts('a', 't7')).toMatchObject({ waiting: 0 });
    expect(await engine.counts('a', 't8')).toMatchObject({ waiting: 1 });
    expect(await engine.readyTenants('a')).toEqual(['t8']);
  });

  it('hears of a job added with BullMQ’s own Queue on any shard (the marker sweep SCANs every master)', async () => {
    const { engine } = open(3);
    const queue = uniqueName('own');
    const added: Queue[] = [];
    const cluster = new Cluster(
      clusterNodes().map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })),
    );
    cleanups.push(async () => {
      await Promise.all(added.map((bull) => bull.close()));
      await cluster.quit();
    });
    for (const tenant of TENANTS.slice(0, 6)) {
      const bull = new Queue(partitionName(queue, tenant), {
        connection: cluster,
        prefix: engine.partitionPrefix(queue, tenant),
        skipVersionCheck: true,
      });
      added.push(bull);
    }
    await Promise.all(added.map((bull) => bull.add('by-hand', { n: 1 })));
    await until(
      async () => (await engine.readyTenants(queue)).length === 6,
      'every tenant whose job was added by hand to be listed',
    );
    expect((await engine.readyTenants(queue)).sort()).toEqual(TENANTS.slice(0, 6).sort());
  });

  it('puts back the jobs of a dead worker on every shard, and lists their tenants again', async () => {
    const { engine: doomed, prefix } = open(3);
    const { engine: survivor } = open(3, prefix);
    await doomed.enqueueBulk(
      'q',
      TENANTS.map((tenant) => ({ tenant, name: 'n', data: 1 })),
    );
    // Fetched with a short lock and never settled: what a SIGKILLed worker leaves behind.
    for (const tenant of TENANTS) expect(await doomed.fetch('q', tenant, 'doomed', 200)).not.toBeNull();
    // Locked elsewhere: nothing to fetch, and the empty fetches take the tenants off the index.
    for (const tenant of TENANTS) expect(await survivor.fetch('q', tenant, 'survivor', LOCK)).toBeNull();
    expect(await survivor.readyTenants('q')).toEqual([]);
    let moved = 0;
    await until(async () => {
      moved += await survivor.recoverStalled('q');
      return moved === TENANTS.length;
    }, 'every stalled job to be put back');
    expect((await survivor.readyTenants('q')).sort()).toEqual([...TENANTS].sort());
    for (const tenant of TENANTS) {
      const job = await survivor.fetch('q', tenant, 'survivor', LOCK);
      expect(job?.attempt).toBe(1);
      await survivor.complete(job!, null);
      expect(await survivor.counts('q', tenant)).toMatchObject({ completed: 1, active: 0, waiting: 0 });
    }
  });

  it('completes a job and takes another shard’s tenant’s next job (two calls, never one cross-slot script)', async () => {
    const { engine, prefix } = open(3);
    const layout = new KeyLayout(prefix, 3);
    const [a, b] = [TENANTS[0]!, TENANTS.find((t) => layout.shardOf(t) !== layout.shardOf(TENANTS[0]!))!];
    const c = TENANTS.find((t) => t !== a && layout.shardOf(t) === layout.shardOf(a))!;
    await engine.enqueueBulk(
      'q',
      [a, a, b, c].map((tenant, i) => ({ tenant, name: 'n', data: i })),
    );
    const fetchNext = (tenant: string) => ({ fetchNext: { workerId: 'w', lockDurationMs: LOCK, tenant } });
    const first = (await engine.fetch('q', a, 'w', LOCK))!;
    // Across shards: completed, then fetched.
    const ofB = (await engine.complete(first, 'ok', fetchNext(b)))!;
    expect(ofB).toMatchObject({ tenant: b, data: 2 });
    const ofC = (await engine.complete(ofB, 'ok', fetchNext(c)))!;
    expect(ofC).toMatchObject({ tenant: c, data: 3 });
    // Within one shard: the one script.
    const secondOfA = (await engine.complete(ofC, 'ok', fetchNext(a)))!;
    expect(secondOfA).toMatchObject({ tenant: a, data: 1 });
    expect(await engine.complete(secondOfA, 'ok')).toBeNull();
    expect(await engine.counts('q', a)).toMatchObject({ completed: 2, active: 0, waiting: 0 });
    for (const tenant of [b, c])
      expect(await engine.counts('q', tenant)).toMatchObject({ completed: 1, active: 0, waiting: 0 });
  });

  it('rejects bad cluster options with a ConfigError naming the option', () => {
    const attempt = (options: object) => () =>
      new BullMqEngine({ connection: REDIS_URL, ...options } as ConstructorParameters<
        typeof BullMqEngine
      >[0]);
    const option = (name: string) => expect.objectContaining({ option: name });
    expect(attempt({ connection: { cluster: [] } })).toThrow(option('connection.cluster'));
    expect(attempt({ connection: { cluster: 'redis://127.0.0.1:7000' } })).toThrow(
      option('connection.cluster'),
    );
    expect(attempt({ connection: { cluster: ['http://x:1'] } })).toThrow(option('connection.cluster[0]'));
    expect(attempt({ connection: { cluster: [{ host: 'h', port: 0 }] } })).toThrow(
      option('connection.cluster[0]'),
    );
    expect(attempt({ connection: { cluster: [{ port: 7000 }] } })).toThrow(ConfigError);
    expect(attempt({ connection: { nodes: [] } })).toThrow(option('connection'));
    for (const shards of [0, 1.5, 1025, '3']) expect(attempt({ shards })).toThrow(option('shards'));
    // A password in a seed URL never reaches a message.
    expect(attempt({ connection: { cluster: ['redis://:s3cret@', 5] } })).toThrow(/^(?!.*s3cret)/s);
  });
});
