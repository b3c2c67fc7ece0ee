/**
 * The connections one pool holds, idle or lent, with the budget's books kept in step:
 * an idle connection is on the budget's LRU list (so another pool may reclaim it), a
 * lent one counts in the budget's `inUse`.
 */
import type { ConnectionBudget } from './budget.js';
import { pingDue } from './connector.js';
import type { PooledConnection } from './types.js';

/** Idle (most recently used last) and lent connections of one pool. */
export class PoolConnections {
  // Most recently used last: checkout pops the warmest connection and leaves the coldest
  // at the front to time out (the budget keeps its own global LRU for reclaim).
  readonly idle: PooledConnection[] = [];
  readonly busy = new Set<PooledConnection>();
  readonly #budget: ConnectionBudget;

  constructor(budget: ConnectionBudget) {
    this.#budget = budget;
  }

  /** Idle plus lent. */
  get size(): number {
    return this.idle.length + this.busy.size;
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
    this.busy.add(conn);
    this.#budget.countInUse(1);
  }

  /** Parks a connection idle, as the most recently used one. */
  park(conn: PooledConnection): void {
    conn.state = 'idle';
    this.idle.push(conn);
    this.#budget.addIdle(conn);
  }

  /** A lent connection comes back; false when it was not lent (a second release). */
  giveBack(conn: PooledConnection): boolean {
    if (conn.state !== 'busy' || !this.busy.delete(conn)) return false;
    this.#budget.countInUse(-1);
    return true;
  }

  /** Takes a connection off either list and marks it closing: it is about to close. */
  unlink(conn: PooledConnection): void {
    if (conn.state === 'idle') {
      const index = this.idle.indexOf(conn);
      if (index !== -1) this.idle.splice(index, 1);
      this.#budget.removeIdle(conn);
    } else if (this.busy.delete(conn)) {
      this.#budget.countInUse(-1);
    }
    conn.state = 'closing';
  }
}
