/**
 * One lease of the fleet budget as this process holds it, and its tie to the connection it
 * pays for. The lease ends when that connection's `close()` has completed — once the
 * server has ended the session, like the local budget's slot — never earlier.
 */
import type { RawConnection } from '../../drivers/driver.js';

/** A lease held by this process: one connection to `server`, open or being opened. */
export class FleetLease {
  readonly id: string;
  readonly server: string;
  /** Set when a renewal found the lease gone and the server full: its connection must close. */
  lost = false;
  #onEnd: ((lease: FleetLease) => void) | undefined;

  constructor(id: string, server: string, onEnd: (lease: FleetLease) => void) {
    this.id = id;
    this.server = server;
    this.#onEnd = onEnd;
  }

  /** Whether the lease still has its connection (or is about to get one). */
  get held(): boolean {
    return this.#onEnd !== undefined;
  }

  /** Sends the lease elsewhere when it ends: to a caller of this process, not back to the store. */
  redirect(onEnd: (lease: FleetLease) => void): void {
    this.#onEnd = onEnd;
  }

  /** Ends the lease (given back, or handed over); idempotent. */
  end(): void {
    const onEnd = this.#onEnd;
    this.#onEnd = undefined;
    onEnd?.(this);
  }
}

// The lease of each connection opened with one.
const leases = new WeakMap<RawConnection, FleetLease>();

/** The lease a connection was opened with, if any. */
export function leaseOf(raw: RawConnection): FleetLease | undefined {
  return leases.get(raw);
}

/**
 * Ties `lease` to `raw`: the lease ends once `raw.close()` has completed (the server has
 * closed the session), whoever closes it and for whatever reason.
 */
export function bindLease(raw: RawConnection, lease: FleetLease): void {
  leases.set(raw, lease);
  const close = raw.close.bind(raw);
  raw.close = () => close().finally(() => lease.end());
}

/** What a connector asks the fleet budget for before it opens a connection. */
export interface LeaseTaker {
  /**
   * A lease for a new connection to `server` (`host:port`), or undefined when that server
   * has no fleet budget. With `wanted`, reclaims, asks the fleet and queues FIFO until one
   * frees, for at most `acquireTimeoutMs` and while `wanted()` (someone still waits for
   * the connection); without, only takes one free with nobody queued. Rejects with
   * `FleetBudgetError` when none could be had.
   */
  take(server: string, wanted?: () => boolean): Promise<FleetLease | undefined>;
}
