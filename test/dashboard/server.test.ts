/**
 * The dashboard server without a browser: `/metrics` is valid Prometheus text whose
 * series count does not grow with the number of tenants, and with a token set every
 * route answers 401 to a request without it, bull-board's included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../dashboard/index.js';
import type { ProcessSnapshot } from '../../src/metrics/snapshot.js';
import { MemorySnapshotStore } from '../../src/metrics/snapshot-store.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { deletePrefix } from '../queue/engines.js';
import { type Exposition, parseExposition } from '../support/prometheus.js';
import { REDIS_URL, uniqueName } from '../support/services.js';

const TOP = 10;

/** Ten processes' snapshots, each with its own 100 busy tenants of queue `q`. */
function snapshots(tenantsPerProcess: number): ProcessSnapshot[] {
  const now = Date.now();
  return Array.from({ length: 10 }, (_, p) => ({
    id: `proc-${p}`,
    host: 'h',
    pid: 1000 + p,
    version: '0.1.0',
    startedAt: now - 60_000,
    heartbeatAt: now,
    periodMs: 60_000,
    queues: {
      q: {
        completed: tenantsPerProcess * 10,
        failed: tenantsPerProcess,
        retried: 0,
        running: 1,
        durations: { counts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], sumMs: 5000, count: 91 },
        waitMs: { p50: 1, p99: 2 },
      },
    },
    tenants: Array.from({ length: tenantsPerProcess }, (_, t) => ({
      queue: 'q',
      tenant: `t-${p}-${t}`,
      completed: 10,
      failed: 1,
      retried: 0,
      durations: { counts: [], sumMs: 0, count: 0 },
      waitMs: { p50: 1, p99: 2 },
    })),
    running: 1,
    pools: {
      budget: { max: 8, open: 2, inUse: 1, idle: 1, waiting: 0 },
      pools: [],
      counters: {
        acquires: 1,
        connects: 1,
        connectFailures: 0,
        poolEvictions: 0,
        reclaims: 0,
        timeouts: 0,
        recycles: 0,
      },
      acquireWaitMs: { p50: 0.5, p99: 3, max: 4 },
      breakers: [],
    },
    prewarm: null,
  }));
}

async function metricsFor(tenants: number): Promise<Exposition> {
  const engine = new MemoryEngine();
  const store = new MemorySnapshotStore();
  for (const s of snapshots(tenants / 10)) await store.publish(s, 60_000);
  // A backlog for every tenant too: two jobs each waiting.
  await engine.enqueueBulk(
    'q',
    Array.from({ length: tenants }, (_, i) => [
      { tenant: `t-${i % 10}-${Math.floor(i / 10)}`, name: 'n', data: 1 },
      { tenant: `t-${i % 10}-${Math.floor(i / 10)}`, name: 'n', data: 2 },
    ]).flat(),
  );
  const dashboard = await startDashboard({ engine, store, port: 0, topTenants: TOP });
  try {
    const answer = await fetch(`${dashboard.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(await answer.text());
  } finally {
    await dashboard.close();
    await engine.close();
  }
}

describe('dashboard /metrics', () => {
  it('parses as Prometheus text and keeps per-tenant series to the top N plus other', async () => {
    const many = await metricsFor(2000);
    const few = await metricsFor(20);
    // The series count depends on queues, processes and N, not on tenants.
    expect(many.samples.length).toBe(few.samples.length);
    expect(many.samples.length).toBeLessThanOrEqual(100);
    for (const family of ['fleet_tenant_jobs_completed_total', 'fleet_tenant_waiting']) {
      const series = many.samples.filter((s) => s.name === family);
      expect(series).toHaveLength(TOP + 1);
      expect(series.filter((s) => s.labels.tenant === 'other')).toHaveLength(1);
    }
    // other = total − the top N.
    const waiting = many.samples.filter((s) => s.name === 'fleet_tenant_waiting');
    expect(waiting.reduce((n, s) => n + s.value, 0)).toBe(4000);
    expect(waiting.find((s) => s.labels.tenant === 'other')!.value).toBe(4000 - 2 * TOP);
    expect(many.samples.find((s) => s.name === 'fleet_queue_waiting')).toMatchObject({
      labels: { queue: 'q' },
      value: 4000,
    });
    expect(many.samples.find((s) => s.name === 'fleet_jobs_completed_total')!.value).toBe(2000 * 10);
    expect(many.samples.find((s) => s.name === 'fleet_pool_budget_max')!.value).toBe(80);
    expect(many.types.get('fleet_job_duration_seconds')).toBe('histogram');
    // Buckets are cumulative and end with +Inf = _count.
    const buckets = many.samples
      .filter((s) => s.name === 'fleet_job_duration_seconds_bucket')
      .map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(buckets.at(-1)).toBe(
      many.samples.find((s) => s.name === 'fleet_job_duration_seconds_count')!.value,
    );
  });
});

describe('dashboard token', () => {
  const prefix = uniqueName('fleet-dash-auth');
  const token = 'a-long-dashboard-token';
  let engine: BullMqEngine;
  let dashboard: RunningDashboard;

  beforeAll(async () => {
    engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    await engine.enqueue('reports', { tenant: 'acme', name: 'n', data: 1 });
    dashboard = await startDashboard({ engine, port: 0, token, queues: ['reports'] });
  });

  afterAll(async () => {
    await dashboard?.close();
    await engine?.close();
    await deletePrefix(prefix);
  });

  const routes = [
    '/',
    '/assets/fleet.js',
    '/api/fleet',
    '/api/fleet/events',
    '/api/search?tenant=acme',
    '/metrics',
    '/queues',
    '/queues/',
    '/queues/api/queues',
    '/queues/api/queues/reports.acme/1/retry/failed',
    '/queues/static/images/logo.svg',
    '/no-such-route',
  ];

  it('answers 401 on every route without the token, or with a wrong one', async () => {
    for (const route of routes) {
      for (const headers of [
        {} as Record<string, string>,
        { authorization: 'Bearer wrong-token-here' },
        { authorization: `Basic ${Buffer.from(`ops:${token}x`).toString('base64')}` },
      ]) {
        const answer = await fetch(`${dashboard.url}${route}`, { headers });
        expect({ route, status: answer.status }).toEqual({ route, status: 401 });
        expect(answer.headers.get('www-authenticate')).toMatch(/^Basic /);
        const body = await answer.text();
        expect(body).not.toContain(token);
      }
    }
    // Writes too.
    const put = await fetch(`${dashboard.url}/queues/api/queues/reports.acme/retry/failed`, {
      method: 'PUT',
    });
    expect(put.status).toBe(401);
  });

  it('lets the token through as a bearer token or as a Basic password, and no answer holds a URL', async () => {
    const bearer = { authorization: `Bearer ${token}` };
    const basic = { authorization: `Basic ${Buffer.from(`ops:${token}`).toString('base64')}` };
    for (const headers of [bearer, basic])
      for (const route of [
        '/',
        '/assets/fleet.js',
        '/api/fleet',
        '/metrics',
        '/queues',
        '/queues/api/queues',
      ]) {
        const answer = await fetch(`${dashboard.url}${route}`, { headers });
        expect({ route, status: answer.status }).toEqual({ route, status: 200 });
        const body = await answer.text();
        expect(body).not.toMatch(/redis:\/\/|postgres:\/\/|mysql:\/\//);
        expect(body).not.toContain(token);
      }
    const events = await fetch(`${dashboard.url}/api/fleet/events`, { headers: bearer });
    expect(events.status).toBe(200);
    expect(events.headers.get('content-type')).toBe('text/event-stream');
    await events.body?.cancel();
  });
});

describe('dashboard read-only mode', () => {
  it('lets bull-board read partitions but refuses every write with 405', async () => {
    const prefix = uniqueName('fleet-dash-ro');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    const dashboard = await startDashboard({ engine, port: 0, readOnly: true, queues: ['reports'] });
    try {
      const id = await engine.enqueue('reports', { tenant: 'acme', name: 'n', data: 1, delayMs: 3_600_000 });
      const found = (await (await fetch(`${dashboard.url}/api/search?tenant=acme`)).json()) as {
        partitions: string[];
      };
      expect(found.partitions).toEqual(['reports.acme']);
      const list = (await (await fetch(`${dashboard.url}/queues/api/queues`)).json()) as {
        queues: { name: string; readOnlyMode: boolean }[];
      };
      expect(list.queues.map((q) => q.name)).toEqual(['reports.acme']);
      expect(list.queues[0]!.readOnlyMode).toBe(true);
      for (const path of [
        `reports.acme/${id}/promote`,
        'reports.acme/retry/failed',
        'reports.acme/clean/delayed',
      ])
        expect((await fetch(`${dashboard.url}/queues/api/queues/${path}`, { method: 'PUT' })).status).toBe(
          405,
        );
      expect((await engine.getJob('reports', 'acme', id))?.state).toBe('delayed');
    } finally {
      await dashboard.close();
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});
