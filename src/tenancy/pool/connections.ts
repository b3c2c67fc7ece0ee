/**
 * The connections one pool holds, idle or lent, with the budget's books kept in step:
 * an idle connection is on the budget's LRU list (so another pool may reclaim it), a
 * lent one counts in the budget's `inUse`. A checkout and a release change a connection's
 * state and a count, and touch no Set: the set of every connection is written only when
 * one opens or closes.
 */
import type { RawConnection } from '../drivers/driver.js';
import type { BudgetMember, ConnectionBudget } from './budget.js';
import { pingDue } from './connector.js';
import type { PoolCounts, PooledConnection } from './types.js';

/** Idle (most recently used last) and lent connections of one pool. */
export class PoolConnections {
  // Most recently used last: checkout pops the warmest connection and leaves the coldest
  // at the front to time out (the budget keeps its own global LRU for reclaim).
  readonly idle: PooledConnection[] = [];
  // Every connection from its opening until it starts closing, whatever its state.
  readonly #all = new Set<PooledConnection>();
  #lent = 0;
  readonly #budget: ConnectionBudget;

  constructor(budget: ConnectionBudget) {
    this.#budget = budget;
  }

  /** Idle plus lent. */
  get size(): number {
    return this.idle.length + this.#lent;
  }

  /** The pool's counts, given the connections it is opening and the callers it has queued. */
  counts(connecting: number, waiting: number): PoolCounts {
    return { open: this.size + connecting, inUse: this.#lent, idle: this.idle.length, waiting };
  }

  /** Connections lent right now. */
  get lent(): number {
    return this.#lent;
  }

  /** The connections lent right now (for a forced close). */
  lentConnections(): PooledConnection[] {
    return [...this.#all].filter((conn) => conn.state === 'busy');
  }

  /** The record of a connection just opened, `held` by the pool until it starts closing. */
  adopt(raw: RawConnection, member: BudgetMember): PooledConnection {
    const now = Date.now();
    // The budget's list links are there from the start, so every record has one shape.
    const conn: PooledConnection = {
      raw,
      member,
      createdAt: now,
      idleSince: now,
      state: 'held',
      idlePrev: undefined,
      idleNext: undefined,
      idleListed: false,
    };
    this.#all.add(conn);
    return conn;
  }

  /** Takes the most recently used idle connection, off the budget's LRU list too. */
  popIdle(): PooledConnection | undefined {
    const conn = this.idle.pop();
    if (conn) this.#budget.removeIdle(conn);
    return conn;
  }

  /**
   * Lends the most recently used idle connection if it can be lent as it is: alive,
   * within `maxLifetimeMs` of its opening, and used recently enough to need no ping.
   * Otherwise undefined, with nothing changed: the caller goes the way that can deal with
   * it (closing a dead one, pinging a stale one).
   */
  takeReady(now: number, maxLifetimeMs: number): PooledConnection | undefined {
    const conn = this.idle[this.idle.length - 1];
    if (conn === undefined || !conn.raw.alive || now - conn.createdAt >= maxLifetimeMs || pingDue(conn, now))
      return undefined;
    this.idle.pop();
    this.#budget.removeIdle(conn);
    this.lend(conn);
    return conn;
  }

  /** Marks a connection lent. */
  lend(conn: PooledConnection): void {
    conn.state = 'busy';
    this.#lent++;
    this.#budget.countInUse(1);
  }

  /** Parks a connection idle, as the most recently used one. */
  park(conn: PooledConnection): void {
    conn.state = 'idle';
    this.idle.push(conn);
    this.#budget.addIdle(conn);
  }

  /**
   * A lent connection comes back, held until it is parked, handed on or closed; false
   * when it was not lent (a second release).
   */
  giveBack(conn: PooledConnection): boolean {
    if (conn.state !== 'busy') return false;
    conn.state = 'held';
    this.#lent--;
    this.#budget.countInUse(-1);
    return true;
  }

  /** Takes a connection off either list and marks it closing: it is about to close. */
  unlink(conn: PooledConnection): void {
    if (conn.state === 'idle') {
      const index = this.idle.indexOf(conn);
      if (index !== -1) this.idle.splice(index, 1);
      this.#budget.removeIdle(conn);
    } else if (conn.state === 'busy') {
      this.#lent--;
      this.#budget.countInUse(-1);
    }
    this.#all.delete(conn);
    conn.state = 'closing';
  }
}
