/**
 * Fixtures of the worker suites: a registry on a Postgres database of its own, a fleet
 * over one engine of the conformance list, and small helpers to wait for outcomes
 * without putting a timing into an assertion.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Fleet } from '../../src/fleet.js';
import type { OrgInput } from '../../src/tenancy/org.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import type { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import type { EngineCase, EngineHarness } from '../queue/engines.js';
import { postgresCase, type Store } from '../support/databases.js';
import { uniqueName } from '../support/services.js';

/** A registry on a fresh Postgres database, shared by the tests of one file. */
export interface RegistryFixture {
  registry: OrgRegistry;
  store: Store;
  /** Adds orgs with unique slugs (`<prefix>-<random>-<i>`) and provisions their schemas. */
  addTenants(count: number, input?: Partial<OrgInput>, prefix?: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function openRegistry(): Promise<RegistryFixture> {
  const pg = postgresCase();
  const store = await pg.createStore();
  // A short cache so that a test changing an org sees it promptly in the worker.
  const registry = await OrgRegistry.open(store.url, { cacheTtlMs: 100 });
  await registry.migrate();
  return {
    registry,
    store,
    async addTenants(count, input = {}, prefix = 't') {
      const base = uniqueName(prefix).replaceAll('_', '-');
      const slugs: string[] = [];
      for (let i = 0; i < count; i++) {
        const slug = `${base}-${i}`;
        await registry.add({ ...input, slug });
        if ((input.storageMode ?? 'schema') === 'schema') await registry.provision(slug);
        slugs.push(slug);
      }
      return slugs;
    },
    async cleanup() {
      await registry.close();
      await store.drop();
      await pg.close();
    },
  };
}

/** A fleet over one engine, closed (with the engine) by `cleanup`. */
export interface FleetFixture {
  fleet: Fleet;
  harness: EngineHarness;
  queue: string;
  cleanup(): Promise<void>;
}

export async function openFleet(
  engine: EngineCase,
  registry: OrgRegistry,
  pools?: TenantPools,
): Promise<FleetFixture> {
  const harness = await engine.open();
  const fleet = await Fleet.open({ engine: harness.engine, registry, ...(pools ? { pools } : {}) });
  return {
    fleet,
    harness,
    queue: uniqueName('q'),
    async cleanup() {
      await fleet.close();
      await harness.cleanup();
    },
  };
}

/**
 * Polls `check` until it returns true. The bound only keeps a broken worker from hanging
 * the suite; no assertion depends on how long it took.
 */

/** A promise with its resolve function, for handlers that wait on the test. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * A full garbage collection on demand: `global.gc` under --expose-gc, else the same
 * function got by turning the flag on at run time (V8 gives it to contexts made afterwards).
 */
export function garbageCollector(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as unknown;
  if (typeof gc !== 'function') throw new Error('no way to force a garbage collection');
  return gc as () => void;
}
