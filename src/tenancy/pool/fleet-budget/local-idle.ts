/**
 * This process's idle connections as the fleet budget sees them: by the server their
 * lease is for. Reclaiming one for a caller of this process keeps its lease (handed over
 * without a round trip to the store); giving one up for another process gives the lease back.
 * Either way the connection's local budget slot is freed once it has closed.
 */
import type { ConnectionBudget, IdleSlot } from '../budget.js';
import type { PooledConnection } from '../types.js';
import { type FleetLease, leaseOf } from './lease.js';

/** The lease of an idle slot (a pooled connection), if it was opened with one. */
export function slotLease(slot: IdleSlot): FleetLease | undefined {
  return leaseOf((slot as PooledConnection).raw);
}

/** Finds and closes this process's idle connections by their lease. */
export class LocalIdle {
  readonly #budget: ConnectionBudget;

  constructor(budget: ConnectionBudget) {
    this.#budget = budget;
  }

  /**
   * Closes the least recently used idle connection on `server` and keeps its lease for the
   * caller: resolves to the lease's id once the connection has closed, or undefined when
   * none is idle there.
   */
  async reclaim(server: string): Promise<string | undefined> {
    const slot = this.#budget.takeIdleWhere((idle) => {
      const lease = slotLease(idle);
      return lease !== undefined && lease.server === server && !lease.lost;
    });
    if (!slot) return undefined;
    const lease = slotLease(slot) as FleetLease;
    lease.redirect(() => {
      // Handed over: the lease stays in the store, now the caller's.
    });
    try {
      await slot.member.surrender(slot);
    } finally {
      this.#budget.free();
    }
    return lease.id;
  }

  /**
   * Closes the least recently used idle connection whose lease matches; its lease goes
   * back to the store once the server closed the session. False when none is idle.
   */
  giveUp(match: (lease: FleetLease) => boolean): boolean {
    const slot = this.#budget.takeIdleWhere((idle) => {
      const lease = slotLease(idle);
      return lease !== undefined && match(lease);
    });
    if (!slot) return false;
    const free = () => this.#budget.free();
    slot.member.surrender(slot).then(free, free);
    return true;
  }
}
