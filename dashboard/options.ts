/** The dashboard's options, their defaults and checks. */

import type { SnapshotStore } from '../src/metrics/snapshot-store.js';
import type { QueueEngine } from '../src/queue/engine.js';
import { ConfigError } from '../src/reporting/errors.js';

/** Options of `createDashboard`. */
export interface DashboardOptions {
  /** The fleet's engine: the snapshots and the partitions are read from it. */
  engine: QueueEngine;
  /** Logical queues to show even before a worker has reported them. @default [] */
  queues?: string[];
  /**
   * Guards every route (the page, the API, `/metrics`, bull-board): `Authorization:
   * Bearer <token>` or Basic auth with the token as password. Unset: no guard, so bind
   * to 127.0.0.1 only.
   */
  token?: string | undefined;
  /** bull-board answers 405 to every write (retry, promote, clean, remove, add). @default false */
  readOnly?: boolean;
  /** Tenants shown per list, registered in bull-board by backlog, and given series in `/metrics`. @default 10 */
  topTenants?: number;
  /** Ready tenants counted per queue for the backlog. @default 2000 */
  backlogTenants?: number;
  /** Another snapshot store than the engine's (tests). */
  store?: SnapshotStore;
}

/** {@link DashboardOptions} with every default applied. */
export interface ResolvedDashboardOptions {
  engine: QueueEngine;
  queues: string[];
  token: string | undefined;
  readOnly: boolean;
  topTenants: number;
  backlogTenants: number;
  store: SnapshotStore | undefined;
}

const DEFAULTS = { readOnly: false, topTenants: 10, backlogTenants: 2000 } as const;

function integerIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(
      name,
      `Expected \`${name}\` to be an integer between ${min} and ${max}, got ${value}`,
    );
  return value;
}

/** Checks the options once and applies the defaults. */
export function resolveDashboardOptions(options: DashboardOptions): ResolvedDashboardOptions {
  if (typeof options !== 'object' || options === null || typeof options.engine?.readyTenants !== 'function')
    throw new ConfigError('engine', 'Expected `engine` to be a QueueEngine (fleet.engine)');
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length < 8))
    throw new ConfigError('token', 'Expected `token` to be a string of at least 8 characters');
  return {
    engine: options.engine,
    queues: [...(options.queues ?? [])],
    token: options.token,
    readOnly: options.readOnly ?? DEFAULTS.readOnly,
    topTenants: integerIn('topTenants', options.topTenants ?? DEFAULTS.topTenants, 1, 1000),
    backlogTenants: integerIn(
      'backlogTenants',
      options.backlogTenants ?? DEFAULTS.backlogTenants,
      1,
      100_000,
    ),
    store: options.store,
  };
}
