/**
 * What a worker writes to its log: every failed job once (info while it will be retried,
 * warn once failed for good), and its own errors once, then quiet: a tenant whose secret
 * is missing must not flood the log while the worker keeps trying it.
 */
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { createLogger } from '../../src/reporting/logger.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { ErrorLog } from '../../src/worker/worker-log.js';
import { uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from './support.js';

/** A logger whose JSON lines are kept, parsed. */
function capture(level: 'info' | 'debug' = 'info'): {
  lines: Array<Record<string, unknown>>;
  logger: ReturnType<typeof createLogger>;
} {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: createLogger({ level, destination }) };
}

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg.cleanup();
});

describe('worker log', () => {
  it('logs each failure of a job once: info while it will be retried, warn when failed for good', async () => {
    const [tenant] = await reg.addTenants(1);
    const { lines, logger } = capture();
    const fleet = await Fleet.open({ engine: 'memory', registry: reg.registry, logger });
    try {
      const queue = uniqueName('q');
      const id = await fleet.enqueue(queue, {
        tenant: tenant!,
        name: 'flaky',
        data: null,
        attempts: 2,
        backoff: { type: 'fixed', delayMs: 1 },
      });
      let runs = 0;
      const worker = fleet.worker(
        queue,
        async () => {
          runs++;
          throw new Error(`boom ${runs}`);
        },
        { borrowConnection: false },
      );
      await until(() => lines.some((line) => line.msg === 'job failed'), 'the final failure to be logged');
      await worker.close();
      const failures = lines.filter((line) => String(line.msg).startsWith('job failed'));
      expect(failures).toEqual([
        expect.objectContaining({
          level: 30,
          msg: 'job failed, will retry',
          tenant,
          jobId: id,
          jobName: 'flaky',
          attempt: '1 of 2',
          error: 'boom 1',
          queue,
        }),
        expect.objectContaining({
          level: 40,
          msg: 'job failed',
          tenant,
          jobId: id,
          jobName: 'flaky',
          attempt: '2 of 2',
          error: 'boom 2',
          queue,
        }),
      ]);
      // The failure is the job's: no stack at this level.
      for (const line of failures) expect(JSON.stringify(line)).not.toContain('at ');
    } finally {
      await fleet.close();
    }
  });

  it('adds the failure’s stack at debug level', async () => {
    const [tenant] = await reg.addTenants(1);
    const { lines, logger } = capture('debug');
    const fleet = await Fleet.open({ engine: 'memory', registry: reg.registry, logger });
    try {
      const queue = uniqueName('q');
      await fleet.enqueue(queue, { tenant: tenant!, name: 'broken', data: null });
      const worker = fleet.worker(
        queue,
        async function handlerThatThrows() {
          throw new Error('boom');
        },
        { borrowConnection: false },
      );
      await until(() => lines.some((line) => line.msg === 'job failed'), 'the failure to be logged');
      await worker.close();
      const failure = lines.find((line) => line.msg === 'job failed')!;
      expect(failure).toMatchObject({ level: 40, tenant, error: 'boom' });
      expect(failure.stack).toMatch(/^Error: boom\n\s+at .*handlerThatThrows/);
    } finally {
      await fleet.close();
    }
  });

  it('logs a tenant whose secret is missing once, not at every try, while a healthy tenant runs', {
    timeout: 60_000,
  }, async () => {
    const variable = `FLEET_TEST_MISSING_${uniqueName('v').toUpperCase()}`;
    const [broken] = await reg.addTenants(
      1,
      { storageMode: 'database', databaseUrl: `env://${variable}` },
      'broken',
    );
    const [healthy] = await reg.addTenants(1);
    const { lines, logger } = capture();
    const pools = await TenantPools.open({ registry: reg.registry, maxConnections: 2 });
    const fleet = await Fleet.open({ engine: 'memory', registry: reg.registry, pools, logger });
    try {
      const queue = uniqueName('q');
      await fleet.enqueue(queue, { tenant: broken!, name: 'stuck', data: null });
      let done = 0;
      const worker = fleet.worker(queue, async () => {
        done++;
      });
      // The worker keeps trying the broken tenant for a while, and serves the healthy one.
      await fleet.enqueue(queue, { tenant: healthy!, name: 'fine', data: null });
      await until(() => done === 1, 'the healthy tenant to be served');
      // 20 s of a worker trying the broken tenant (it used to write ~155 lines a second).
      await sleep(20_000);
      await worker.close();
      const errors = lines.filter((line) => Number(line.level) >= 50);
      // The cause once, naming the missing variable, and the breaker opening on it once;
      // each kind comes back at most once a minute.
      expect(errors.map((line) => (line.err as { type: string }).type)).toEqual([
        'SecretResolutionError',
        'TenantUnavailableError',
      ]);
      expect(JSON.stringify(errors[0])).toContain(variable);
      expect(done).toBe(1);
    } finally {
      await fleet.close();
      await pools.close();
    }
  });
});

describe('ErrorLog', () => {
  it('logs a kind once per quiet time with how many were left out, and a new kind at once', () => {
    const { lines, logger } = capture();
    let now = 1_000_000;
    const log = new ErrorLog(logger, 60_000, () => now);
    for (let i = 0; i < 100; i++) log.report(new Error('secret missing'), 'tryAcquire acme');
    log.report(new Error('connection refused'), 'tryAcquire acme');
    expect(lines.map((line) => line.msg)).toEqual(['worker error', 'worker error']);
    now += 60_000;
    log.report(new Error('secret missing'), 'tryAcquire acme');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ msg: 'worker error, still failing', repeated: 100 });
  });
});
