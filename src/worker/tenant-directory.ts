import type { QueueEngine } from '../queue/engine.js';
import { UnknownTenantError } from '../reporting/errors.js';
import type { Org } from '../tenancy/org.js';
import type { FairPicker } from './fair-picker.js';
import type { Turn } from './worker-types.js';

/** What the directory reads orgs from (an `OrgRegistry` fits). */
interface OrgReader {
  get(slug: string): Promise<Org>;
  /** Many at once, by slug (absent: not registered); used when there. */
  findMany?(slugs: readonly string[]): Promise<Map<string, Org>>;
}

export interface TenantDirectoryOptions {
  engine: QueueEngine;
  orgs: OrgReader;
  picker: FairPicker;
  queue: string;
  perTenantConcurrency: number;
  jobsPerTurn: number;
  orgRefreshMs: number;
  onSkip: (tenant: string, reason: 'inactive' | 'unknown' | 'error') => void;
  onError: (error: unknown, during: string) => void;
}

// Registry reads in flight at once when many new tenants show up together.
const LOAD_CONCURRENCY = 32;

/**
 * The worker's view of the tenants it serves: which orgs are known (with their weight
 * and caps), which are skipped (deactivated or unknown) and until when, and which
 * fleet-wide caps this worker has already set on the engine.
 *
 * A tenant becomes pickable only once its org is loaded and, if it has a fleet-wide cap,
 * that cap is set, so no job of a capped tenant is fetched before the engine knows the
 * cap (a cap to lift is lifted in the background: see `#applyFleetCaps`).
 */
export class TenantDirectory {
  readonly #o: TenantDirectoryOptions;
  readonly #known = new Map<string, Org>();
  /** Skipped slugs and when to look them up again (epoch ms). */
  readonly #skipped = new Map<string, number>();
  /** The fleet-wide cap last set on the engine per tenant (a lift: as soon as it is asked). */
  readonly #capsSet = new Map<string, number | null>();
  /** Lifts of caps asked and not sent yet (see `#liftSoon`), and those under way. */
  #liftsDue: Map<string, null> | undefined;
  readonly #lifting = new Set<Promise<void>>();

  constructor(options: TenantDirectoryOptions) {
    this.#o = options;
  }

  /** The org of a pickable tenant. */
  org(slug: string): Org | undefined {
    return this.#known.get(slug);
  }

  /**
   * Jobs one turn of the tenant may run: `jobsPerTurn`, or 1 for a tenant with a
   * fleet-wide cap (`maxConcurrency`), whose places are to go round the fleet's processes
   * rather than stay with one slot. Such a tenant gets `jobsPerTurn` times its weight in
   * the picker, so it still gets its weight's share of the jobs.
   */
  /**
   * Whether the slot serves the turn's tenant once more: while the turn has jobs left,
   * or, once it is used up, when the round would hand the slot the same tenant again
   * (then a new turn starts). The org is read again, so a deactivation or a new cap ends
   * the turn. The turn also ends early when a tenant waits for a connection, so that the
   * turn's connection goes back now rather than after the whole turn.
   */
  continueTurn(turn: Turn): boolean {
    const org = this.org(turn.org.slug);
    if (org === undefined) return false;
    turn.org = org;
    if (turn.db !== undefined && this.#o.picker.hasBlocked) return false;
    if (turn.served < this.turnLength(org)) return true;
    // A capped tenant's places go round the fleet: never two turns in a row in one slot.
    if (org.maxConcurrency !== null || !this.#o.picker.repick(org.slug)) return false;
    turn.served = 0;
    return true;
  }

  turnLength(org: Org): number {
    return org.maxConcurrency === null ? this.#o.jobsPerTurn : 1;
  }

  /**
   * Reads the engine's ready tenants, loads the orgs of those seen for the first time, then
   * marks every known one ready as of the read (stamped before it was sent, so a tenant
   * whose last job was taken meanwhile is not made ready again). All at once on purpose:
   * marking each as its org arrives let the first-loaded tenant (often the noisy one) run
   * hundreds of jobs before the others were even pickable.
   */
  async admitReady(): Promise<void> {
    const { engine, picker, queue } = this.#o;
    const asOf = picker.stamp();
    const slugs = await engine.readyTenants(queue);
    const now = Date.now();
    const fresh = slugs.filter((slug) => !this.#known.has(slug) && (this.#skipped.get(slug) ?? 0) <= now);
    if (fresh.length > 0) await this.#loadAll(fresh);
    for (const slug of slugs) picker.markReady(slug, asOf);
  }

  /** Reads every known org again so a new weight, cap or deactivation takes effect. */
  async refresh(): Promise<void> {
    await this.#loadAll([...this.#known.keys()]);
  }

  async #loadAll(slugs: readonly string[]): Promise<void> {
    // Many orgs in a few statements when the source can (thousands of new tenants at
    // start-up); if that fails, each is read on its own.
    let found: Map<string, Org> | undefined;
    if (slugs.length > 1 && this.#o.orgs.findMany)
      found = await this.#o.orgs.findMany(slugs).catch((error: unknown) => {
        this.#o.onError(error, 'registry.findMany');
        return undefined;
      });
    if (found === undefined) {
      let next = 0;
      const lane = async () => {
        while (next < slugs.length) await this.#load(slugs[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, slugs.length) }, lane));
      return;
    }
    // With the orgs in hand only the caps are left to set: all in one engine call (a
    // script call per shard and 1,000 tenants on BullMQ, one statement on pg-boss).
    const orgs: Org[] = [];
    for (const slug of slugs) {
      const org = this.#servable(slug, found.get(slug) ?? null);
      if (org !== undefined) orgs.push(org);
    }
    for (const org of await this.#applyFleetCaps(orgs)) this.#admit(org);
  }

  /** Reads one org and, if it may be served, sets its cap and makes it pickable. */
  async #load(slug: string): Promise<void> {
    let org: Org | null;
    try {
      org = await this.#o.orgs.get(slug);
    } catch (error) {
      if (!(error instanceof UnknownTenantError)) {
        this.#o.onError(error, `registry.get ${slug}`);
        this.#skip(slug, 'error');
        return;
      }
      org = null;
    }
    const servable = this.#servable(slug, org);
    if (servable !== undefined)
      for (const admitted of await this.#applyFleetCaps([servable])) this.#admit(admitted);
  }

  /** The org (null: not registered) if it may be served; else the tenant is skipped. */
  #servable(slug: string, org: Org | null): Org | undefined {
    if (org === null) this.#skip(slug, 'unknown');
    else if (!org.active) this.#skip(slug, 'inactive');
    else return org;
    return undefined;
  }

  /** Makes a servable org, its fleet-wide cap set, pickable. */
  #admit(org: Org): void {
    const { slug } = org;
    const wasSkipped = this.#skipped.delete(slug);
    this.#known.set(slug, org);
    const processCap = Math.min(this.#o.perTenantConcurrency, org.maxConcurrency ?? Number.POSITIVE_INFINITY);
    const picksPerFullTurn = this.#o.jobsPerTurn / this.turnLength(org);
    this.#o.picker.upsert({ slug, weight: org.weight * picksPerFullTurn, cap: processCap });
    if (wasSkipped) this.#o.picker.markReady(slug);
  }

  #skip(slug: string, reason: 'inactive' | 'unknown' | 'error'): void {
    const firstTime = !this.#skipped.has(slug) || this.#known.has(slug);
    this.#known.delete(slug);
    this.#o.picker.remove(slug);
    this.#skipped.set(slug, Date.now() + this.#o.orgRefreshMs);
    if (firstTime) this.#o.onSkip(slug, reason);
  }

  /**
   * An org's `maxConcurrency` is a fleet-wide cap, kept by the engine (on BullMQ, the
   * partition queue's global concurrency). Set once per tenant and again on change; the
   * first sighting sets it even when null, to lift a cap an earlier config left behind.
   * Resolves to the orgs that may be admitted.
   *
   * Caps are written before their tenants are admitted, all of `orgs`' in one engine
   * call, so no job of a capped tenant is fetched before the engine knows the cap; when
   * that call fails, its tenants are left out (skipped until the next look). Lifts go out
   * in the background (`#liftSoon`), and their tenants are admitted at once: until a lift
   * lands, a cap left behind can only hold a tenant back, never let it run more. A failed
   * lift is reported and written again at the next refresh. Lifts asked earlier are sent
   * before a cap, and the engine writes in call order, so no lift undoes a later cap.
   */
  async #applyFleetCaps(orgs: readonly Org[]): Promise<readonly Org[]> {
    const caps = new Map<string, number>();
    for (const { slug, maxConcurrency } of orgs) {
      if (this.#capsSet.has(slug) && this.#capsSet.get(slug) === maxConcurrency) continue;
      if (maxConcurrency === null) this.#liftSoon(slug);
      else caps.set(slug, maxConcurrency);
    }
    if (caps.size === 0) return orgs;
    // Lifts asked before this cap go out first, so none lands after it.
    this.#sendLifts();
    try {
      await this.#writeCaps(caps);
    } catch (error) {
      this.#o.onError(error, capsWrite(caps));
      for (const slug of caps.keys()) this.#skip(slug, 'error');
      return orgs.filter((org) => !caps.has(org.slug));
    }
    return orgs;
  }

  /** Writes `caps` on the engine and, once written, remembers them. */
  async #writeCaps(caps: ReadonlyMap<string, number>): Promise<void> {
    await this.#o.engine.setTenantConcurrencies(this.#o.queue, caps);
    for (const [slug, cap] of caps) this.#capsSet.set(slug, cap);
  }

  /**
   * Lifts the tenant's cap in the background, with the other lifts asked in this turn of
   * the event loop: sent on the next turn, once the tenants admitted now have had their
   * first fetches sent (with ten thousand tenants, the write takes a while to build).
   */
  #liftSoon(slug: string): void {
    // Recorded when asked, not when written: a cap asked while the lift is on its way is
    // then written after it (a cap equal to the one before the lift would look unchanged).
    this.#capsSet.set(slug, null);
    if (this.#liftsDue === undefined) {
      this.#liftsDue = new Map();
      setImmediate(() => this.#sendLifts());
    }
    this.#liftsDue.set(slug, null);
  }

  #sendLifts(): void {
    const lifts = this.#liftsDue;
    if (lifts === undefined) return;
    this.#liftsDue = undefined;
    const lift = this.#o.engine.setTenantConcurrencies(this.#o.queue, lifts).catch((error: unknown) => {
      this.#o.onError(error, capsWrite(lifts));
      // Written again at the next look, unless a cap was asked since.
      for (const slug of lifts.keys()) if (this.#capsSet.get(slug) === null) this.#capsSet.delete(slug);
    });
    this.#lifting.add(lift);
    void lift.finally(() => this.#lifting.delete(lift));
  }

  /** Resolves once the lifts under way have landed or failed (the worker's close waits for them). */
  async settled(): Promise<void> {
    this.#sendLifts();
    while (this.#lifting.size > 0) await Promise.all(this.#lifting);
  }
}

/** What a failed cap write was doing, for the `error` event. */
function capsWrite(caps: ReadonlyMap<string, unknown>): string {
  const [first] = caps.keys();
  return `setTenantConcurrency ${caps.size === 1 ? first : `(${caps.size} tenants)`}`;
}
