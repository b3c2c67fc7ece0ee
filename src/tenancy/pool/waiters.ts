/**
 * The callers queued at one {@link ConnectionPool} and the budget slots asked for them.
 * A waiter is served, oldest first, by an idle or newly checked-in connection, or by a
 * connection opened with a slot the budget granted on its behalf; at most one slot is
 * asked per waiter, and one no longer needed (the waiter was served another way or left)
 * is withdrawn or given straight back, so it neither leaks nor delays another pool.
 */
import { FleetBudgetError } from '../../reporting/errors.js';
import { type BudgetMember, type ConnectionBudget, MemberRequests } from './budget.js';
import type { PooledConnection, WaitOptions } from './types.js';
import { WaitQueue } from './wait-queue.js';

/** The pool, as its waiters see it. */
export interface WaiterHost {
  closed(): boolean;
  /** Idle connections parked right now. */
  idleCount(): number;
  /** An idle connection, checked and marked lent; undefined when none is usable. */
  popIdle(): PooledConnection | undefined;
  /** Below its maximum, counting connections being opened and slots asked for. */
  canGrow(): boolean;
  /** Throws (TenantUnavailableError) when no connection attempt may be made now. */
  checkConnect(): void;
  /** Opens one connection with a slot already held (given back on failure). */
  connectWithSlot(): Promise<PooledConnection>;
  /** Reports a failed connect; returns the error every waiter fails with, if fatal. */
  connectFailed(err: unknown): Error | undefined;
  /** A connection opened for a waiter: reported and checked in. */
  connected(conn: PooledConnection): void;
  /** Marks a connection lent. */
  lend(conn: PooledConnection): void;
  checkSettled(): void;
}

/** FIFO waiters of one pool and the slot requests made for them. */
export class PoolWaiters {
  readonly #host: WaiterHost;
  readonly #budget: ConnectionBudget;
  // When a waiter leaves (timeout, abort), a slot asked for on its behalf is no longer
  // needed: withdraw it, so it neither leaks nor delays another pool's waiter.
  readonly #queue = new WaitQueue<PooledConnection>(() => {
    this.#dropSurplusRequests();
    this.#host.checkSettled();
  });
  // Slot requests queued at the budget on behalf of waiters; at most one per waiter.
  readonly #requests: MemberRequests;
  // Connects in progress made for queued waiters (not for tryAcquire or warm).
  #connecting = 0;

  constructor(host: WaiterHost, budget: ConnectionBudget, member: BudgetMember) {
    this.#host = host;
    this.#budget = budget;
    this.#requests = new MemberRequests(budget, member);
  }

  /** Callers queued. */
  get length(): number {
    return this.#queue.length;
  }

  /**
   * Whether a caller that will not wait is turned away at once, asking nothing: others
   * queued before it (FIFO), or nothing idle and no room to open another.
   */
  get turnAwayNow(): boolean {
    return this.#queue.length > 0 || (this.#host.idleCount() === 0 && !this.#host.canGrow());
  }

  /** Slot requests queued or granted but not yet handled. */
  get requested(): number {
    return this.#requests.length;
  }

  /** Queues a caller and sees to it that something will serve it. */
  wait(options: WaitOptions): Promise<PooledConnection> {
    const waiting = this.#queue.wait(options);
    this.pump();
    return waiting;
  }

  /** Hands a free connection to the oldest waiter; false when nobody waits. */
  serve(conn: PooledConnection): boolean {
    const waiter = this.#queue.shift();
    if (!waiter) return false;
    this.#host.lend(conn);
    waiter.resolve(conn);
    this.#dropSurplusRequests();
    return true;
  }

  /** The pool closed: slot requests are withdrawn and every waiter fails with `err`. */
  close(err: Error): void {
    this.#requests.cancelAll();
    this.#queue.rejectAll(err);
  }

  /**
   * Serves waiters from idle connections, then asks the budget for one slot per waiter
   * that no idle connection, connection being opened, or earlier request will serve.
   */
  pump(): void {
    const host = this.#host;
    if (host.closed()) return;
    while (this.#queue.length > 0 && host.idleCount() > 0) {
      const conn = host.popIdle();
      if (!conn) break;
      this.#queue.shift()?.resolve(conn);
    }
    while (this.#queue.length > this.#connecting + this.#requests.length && host.canGrow()) {
      try {
        host.checkConnect();
      } catch (err) {
        this.#rejectAll(err as Error);
        return;
      }
      this.#requests.add(() => this.#onSlot());
    }
  }

  // A slot asked for a waiter arrived. That waiter may have been served by a released
  // connection meanwhile, or left: then the slot goes straight back.
  #onSlot(): void {
    if (this.#host.closed() || this.#queue.length <= this.#connecting) {
      this.#budget.free();
      this.#host.checkSettled();
      return;
    }
    this.#connectForWaiter();
  }

  // Fails every waiter (the breaker opened) and withdraws the slots asked for them, so the
  // budget's queue does not keep other pools' waiters behind callers who are gone.
  #rejectAll(err: Error): void {
    this.#queue.rejectAll(err);
    this.#dropSurplusRequests();
    this.#host.checkSettled();
  }

  #dropSurplusRequests(): void {
    this.#requests.trimTo(Math.max(0, this.#queue.length - this.#connecting));
  }

  async #connectForWaiter(): Promise<void> {
    let conn: PooledConnection;
    this.#connecting++;
    try {
      conn = await this.#host.connectWithSlot();
    } catch (err) {
      this.#connecting--;
      if (err instanceof FleetBudgetError) {
        // No lease within acquireTimeoutMs: the server is busy, not broken. Waiters keep
        // their own deadlines (AcquireTimeoutError); those still here get a new attempt.
        this.pump();
        this.#host.checkSettled();
        return;
      }
      // The connect was for the oldest waiter; it gets the error. When the circuit breaker
      // has just opened, the other waiters fail fast with TenantUnavailableError too.
      const fatal = this.#host.connectFailed(err);
      this.#queue.shift()?.reject(err as Error);
      if (fatal) this.#rejectAll(fatal);
      this.pump();
      this.#host.checkSettled();
      return;
    }
    this.#connecting--;
    this.#host.connected(conn);
  }
}
