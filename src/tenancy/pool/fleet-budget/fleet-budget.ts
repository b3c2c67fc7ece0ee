/**
 * The fleet-wide connection budget: per database server, how many connections every
 * process of the fleet together may hold, kept as leases in a lease store shared by the
 * fleet: Redis or Postgres (lease-store.ts; `redis/`, `postgres/`).
 *
 * - Opening a connection first takes a lease; the lease ends when the connection's close
 *   has completed. A checkout of a connection already open never touches the store.
 * - When the server's budget is full, a caller who may wait first reclaims this process's
 *   own least recently used idle connection on that server (its lease is handed over
 *   without a round trip), then asks the other processes to give up one of theirs
 *   (the store's `want` message), then waits in the fleet-wide FIFO, woken by every release and polling as a
 *   backstop, for at most `acquireTimeoutMs`.
 * - Every third of the lease TTL, one call renews all this process's leases; a crashed
 *   process's leases lapse within the TTL.
 * - The store unreachable: no lease, so no new connection (fail closed); connections
 *   already open keep serving; everything resumes when the store answers again.
 */
import { randomUUID } from 'node:crypto';
import { ClosedError, FleetBudgetError } from '../../../reporting/errors.js';
import type { Logger } from '../../../reporting/logger.js';
import type { ConnectionBudget, IdleSlot } from '../budget.js';
import { FleetLease, type LeaseTaker } from './lease.js';
import type { LeaseStore } from './lease-store.js';
import { LocalIdle, slotLease } from './local-idle.js';
import { openLeaseStore } from './open-lease-store.js';
import type { ResolvedFleetBudgetOptions } from './options.js';
import { type FleetBudgetStats, newServerState, type ServerState } from './server-state.js';

export type { FleetBudgetStats, FleetServerStats } from './server-state.js';

/** The leases of one process, and its way to wait for one. */
export class FleetBudget implements LeaseTaker {
  readonly #options: ResolvedFleetBudgetOptions;
  readonly #acquireTimeoutMs: number;
  readonly #logger: Logger;
  readonly #store: LeaseStore;
  readonly #local: LocalIdle;
  readonly #processId = randomUUID();
  readonly #servers = new Map<string, ServerState>();
  readonly #held = new Map<string, FleetLease>();
  readonly #pollMs: number;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #releasing = new Set<Promise<unknown>>();
  #renewing = false;
  #seq = 0;
  #reachable = true;
  // No new lease or wait (closing); then no renewal and no store (closed).
  #closed = false;
  #stopped = false;

  constructor(
    options: ResolvedFleetBudgetOptions,
    budget: ConnectionBudget,
    acquireTimeoutMs: number,
    logger: Logger,
  ) {
    this.#options = options;
    this.#acquireTimeoutMs = acquireTimeoutMs;
    this.#logger = logger;
    this.#local = new LocalIdle(budget);
    this.#pollMs = Math.max(20, Math.min(250, Math.floor(options.leaseTtlMs / 10)));
    this.#store = openLeaseStore(
      options,
      this.#processId,
      Math.min(2_000, Math.floor(options.leaseTtlMs / 3)),
      {
        released: (server) => this.#onReleased(server),
        wanted: (server, from) => this.#onWanted(server, from),
      },
    );
    for (const server of options.perServer.keys()) this.#state(server);
    budget.watch({ handBack: (slot) => this.#handBack(slot), onIdle: (slot) => this.#onIdle(slot) });
    this.#heartbeat = setInterval(() => void this.renew(), Math.floor(options.leaseTtlMs / 3));
    this.#heartbeat.unref();
  }

  /** Per server: fleet-wide leases, the limit, this process's share and waiters. */
  stats(): FleetBudgetStats {
    const mine = new Map<string, number>();
    for (const lease of this.#held.values()) mine.set(lease.server, (mine.get(lease.server) ?? 0) + 1);
    return {
      process: this.#processId,
      reachable: this.#reachable,
      servers: [...this.#servers.values()].map((state) => ({
        server: state.server,
        limit: state.limit,
        leases: state.live,
        mine: mine.get(state.server) ?? 0,
        waiting: state.waiting,
      })),
    };
  }

  /** Why new connections may be failing right now ('' when the store answers). */
  trouble(): string {
    return this.#reachable
      ? ''
      : `the fleet budget's ${this.#store.name} does not answer; no new connection is opened without a lease`;
  }

  async take(server: string, wanted?: () => boolean): Promise<FleetLease | undefined> {
    const state = this.#state(server);
    if (!state) return undefined;
    if (this.#closed) throw new ClosedError('fleet budget');
    if (wanted) return this.#wait(state, wanted);
    const id = await this.#try(state, '');
    if (id !== undefined) return this.#hold(id, server);
    throw new FleetBudgetError(server, 'full');
  }

  /** Renews every lease this process holds, in one call; run by the heartbeat. */
  async renew(): Promise<void> {
    if (this.#renewing || this.#stopped) return;
    this.#renewing = true;
    try {
      const states = [...this.#servers.values()];
      const answer = await this.#store.renew(
        this.#options.leaseTtlMs,
        states.map((state) => ({
          server: state.server,
          limit: state.limit,
          ids: [...this.#held.values()].filter((l) => l.server === state.server).map((l) => l.id),
        })),
      );
      this.#reached();
      answer.forEach(({ live, lost }, index) => {
        states[index]!.live = live;
        for (const id of lost) this.#lose(id);
      });
    } catch (err) {
      this.#unreached(err);
    } finally {
      this.#renewing = false;
    }
  }

  /**
   * Ends every wait for a lease at once (ClosedError) and refuses new ones, so that pools
   * closing do not wait on a connect that waits on the fleet. Leases held stay renewed.
   */
  stopWaiting(): void {
    this.#closed = true;
    for (const state of this.#servers.values()) for (const wake of [...state.wakers]) wake();
  }

  /**
   * Stops renewing, waits for the releases in flight, and disconnects. Call it once the
   * pools have closed: a lease still held then lapses within the TTL.
   */
  async close(): Promise<void> {
    this.stopWaiting();
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    await Promise.allSettled([...this.#releasing]);
    await this.#store.close();
  }

  async #wait(state: ServerState, wanted: () => boolean): Promise<FleetLease> {
    const deadline = Date.now() + this.#acquireTimeoutMs;
    const ticket = `${this.#processId}:${++this.#seq}:ticket`;
    let failure: unknown;
    state.waiting++;
    try {
      for (;;) {
        if (this.#closed) {
          this.#withdraw(state, ticket);
          throw new ClosedError('fleet budget');
        }
        failure = undefined;
        try {
          const id = await this.#try(state, ticket);
          if (id !== undefined) return this.#hold(id, state.server);
        } catch (err) {
          failure = err;
        }
        if (failure === undefined) {
          const reclaimed = await this.#local.reclaim(state.server);
          if (reclaimed !== undefined) {
            this.#withdraw(state, ticket);
            return this.#hold(reclaimed, state.server);
          }
          this.#askOthers(state);
        }
        const left = deadline - Date.now();
        // Past the deadline, or nobody waits for the connection any more: give the place up.
        if (left <= 0 || !wanted()) break;
        await this.#sleep(state, Math.min(left, this.#pollMs));
      }
    } finally {
      state.waiting--;
    }
    this.#withdraw(state, ticket);
    throw new FleetBudgetError(state.server, failure === undefined ? 'full' : 'unreachable', {
      cause: failure,
    });
  }

  // One attempt at a lease: its id when granted. Rejects with FleetBudgetError('unreachable')
  // when the store fails; a take that failed only on its way back (the store granted it,
  // then the answer came too late or the connection dropped) is given back at once rather
  // than left to block the server until it lapses, which is why every attempt has an id
  // of its own: that release can never remove a lease granted to a later attempt.
  async #try(state: ServerState, ticket: string): Promise<string | undefined> {
    const id = `${this.#processId}:${++this.#seq}`;
    let answer: { taken: boolean; live: number };
    try {
      answer = await this.#store.take(state.server, state.limit, id, ticket, this.#options.leaseTtlMs);
    } catch (err) {
      this.#unreached(err);
      this.#track(this.#store.release(state.server, id));
      throw new FleetBudgetError(state.server, 'unreachable', { cause: err });
    }
    this.#reached();
    state.live = answer.live;
    return answer.taken ? id : undefined;
  }

  #hold(id: string, server: string): FleetLease {
    const lease = new FleetLease(id, server, (ended) => this.#release(ended));
    this.#held.set(id, lease);
    return lease;
  }

  // The lease's connection has closed: back to the store. If that fails the lease lapses
  // within the TTL (nobody renews it any more).
  #release(lease: FleetLease): void {
    this.#held.delete(lease.id);
    const state = this.#servers.get(lease.server);
    if (!state) return;
    state.live = Math.max(0, state.live - 1);
    this.#track(this.#store.release(lease.server, lease.id), (err) => this.#unreached(err));
  }

  #withdraw(state: ServerState, ticket: string): void {
    // Unreachable: the ticket lapses within the lease TTL.
    this.#track(this.#store.withdraw(state.server, ticket));
  }

  // A call to the store that close() waits for; failing, it lapses within the TTL.
  #track(call: Promise<unknown>, onError: (err: unknown) => void = () => {}): void {
    const tracked: Promise<unknown> = call.catch(onError).finally(() => this.#releasing.delete(tracked));
    this.#releasing.add(tracked);
  }

  // Asks the other processes, at most once per poll per server, to close an idle
  // connection on the server.
  #askOthers(state: ServerState): void {
    const now = Date.now();
    if (now - state.lastAskedAt < this.#pollMs) return;
    state.lastAskedAt = now;
    this.#store.want(state.server, this.#processId).catch(() => {
      // Unreachable: the next poll asks again.
    });
  }

  #sleep(state: ServerState, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        state.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      state.wakers.add(wake);
    });
  }

  #onReleased(server: string): void {
    const state = this.#servers.get(server);
    if (state) for (const wake of [...state.wakers]) wake();
  }

  #onWanted(server: string, from: string): void {
    if (from === this.#processId) return;
    const state = this.#servers.get(server);
    if (!state) return;
    // Our least recently used idle connection there closes; with none idle, the next one
    // to come back closes instead of being parked.
    if (!this.#local.giveUp((lease) => lease.server === state.server)) {
      state.giveBackUntil = Date.now() + 2 * this.#pollMs;
    }
  }

  // Whether a connection coming back to its pool (no caller of that pool waiting) must
  // close rather than be parked: its lease was lost, or another process asked for one.
  #handBack(slot: IdleSlot): boolean {
    const lease = slotLease(slot);
    if (!lease) return false;
    if (lease.lost) return true;
    const state = this.#servers.get(lease.server);
    if (!state || state.giveBackUntil < Date.now()) return false;
    state.giveBackUntil = 0;
    return true;
  }

  // A connection was parked idle: callers of ours waiting for its server may reclaim it.
  #onIdle(slot: IdleSlot): void {
    const lease = slotLease(slot);
    const state = lease && this.#servers.get(lease.server);
    if (state && state.waiting > 0) for (const wake of [...state.wakers]) wake();
  }

  // A renewal found the lease gone and the server full: its connection closes, now if idle.
  #lose(id: string): void {
    const lease = this.#held.get(id);
    if (!lease) return;
    lease.lost = true;
    this.#logger.warn({ server: lease.server }, 'fleet budget: a lease lapsed; its connection closes');
    this.#local.giveUp((candidate) => candidate === lease);
  }

  #state(server: string): ServerState | undefined {
    let state = this.#servers.get(server);
    if (state) return state;
    const limit = this.#options.perServer.get(server) ?? this.#options.defaultPerServer;
    if (limit === undefined) return undefined;
    state = newServerState(server, limit);
    this.#servers.set(server, state);
    return state;
  }

  #reached(): void {
    if (this.#reachable) return;
    this.#reachable = true;
    this.#logger.info(`fleet budget: ${this.#store.name} answers again`);
  }

  #unreached(err: unknown): void {
    if (!this.#reachable) return;
    this.#reachable = false;
    this.#logger.warn(
      { err },
      `fleet budget: ${this.#store.name} does not answer; no new connection is opened`,
    );
  }
}
