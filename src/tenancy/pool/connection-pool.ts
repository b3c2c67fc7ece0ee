/**
 * One pool of raw connections to one database: a tenant's own database in database mode,
 * or the registry database shared by every schema-mode tenant. Every connection it opens
 * is paid for with a slot of the global {@link ConnectionBudget}, and the slot is given
 * back only once the connection has finished closing.
 *
 * It never lends a connection it knows is broken: dead ones (killed by the server, errored
 * while idle) and ones past their lifetime are closed at checkout or release, and one idle
 * for a while is pinged first, so no caller sees the error of one that died in the pool.
 */
import { ClosedError, FleetBudgetError } from '../../reporting/errors.js';
import type { DatabaseKind, RawConnection } from '../drivers/driver.js';
import type { StorageMode } from '../org.js';
import type { BudgetMember, ConnectionBudget, IdleSlot } from './budget.js';
import { PoolConnections } from './connections.js';
import { PoolConnector, prepareCheckout, setCheckoutPreface, unfitReason } from './connector.js';
import { PoolDrain } from './drain.js';
import { type SideCancelDeps, sideCancelFor } from './side-cancel.js';
import type {
  CloseReason,
  ConnectionPoolOptions,
  PoolCounts,
  PooledConnection,
  PoolHooks,
  WaitOptions,
} from './types.js';
import { PoolWaiters } from './waiters.js';

export type { CloseReason, PooledConnection, PoolHooks } from './types.js';

/** Attempts at lending a working connection before the last error is passed on. */
const MAX_CHECKOUT_ATTEMPTS = 3;

/** One database's pool of raw connections, inside the global budget. */
export class ConnectionPool implements BudgetMember {
  readonly slug: string | null;
  readonly mode: StorageMode;
  readonly kind: DatabaseKind;
  /** Epoch milliseconds of the last checkout or release. */
  lastUsedAt = Date.now();
  maxConnections: number;
  readonly #options: ConnectionPoolOptions<ConnectionPool>;
  readonly #budget: ConnectionBudget;
  readonly #hooks: PoolHooks<ConnectionPool>;
  readonly #conns: PoolConnections;
  // Callers queued for a connection, and the budget slots asked for them.
  readonly #waiters: PoolWaiters;
  readonly #connector: PoolConnector;
  readonly #sideCancel: SideCancelDeps;
  // Whether and why the pool was closed, and when it has drained.
  readonly #drain = new PoolDrain(() => this.#conns.size + this.#connecting + this.#waiters.requested);
  #connecting = 0;
  #afterDropQueued = false;

  constructor(options: ConnectionPoolOptions<ConnectionPool>) {
    this.#options = options;
    this.slug = options.slug;
    this.mode = options.mode;
    this.kind = options.kind;
    this.maxConnections = options.maxConnections;
    this.#budget = options.budget;
    this.#hooks = options.hooks;
    this.#conns = new PoolConnections(options.budget);
    this.#waiters = new PoolWaiters(
      {
        closed: () => this.#drain.closed,
        idleCount: () => this.#conns.idle.length,
        popIdle: () => this.#popIdle(),
        canGrow: () => this.#total() < this.maxConnections,
        checkConnect: () => this.#hooks.checkConnect(this),
        connectWithSlot: () => this.#connectWithSlot(() => this.#waiters.length > 0),
        connectFailed: (err) => this.#connectFailed(err),
        connected: (conn) => this.#connected(conn),
        lend: (conn) => this.#markBusy(conn),
        checkSettled: () => this.#checkSettled(),
      },
      options.budget,
      this,
    );
    this.#connector = new PoolConnector(options);
    this.#sideCancel = {
      budget: options.budget,
      open: () => this.#connector.open(),
      borrowIdle: () => this.#popIdle(),
      giveBack: (conn) => this.release(conn),
    };
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#drain.closed;
  }

  /** Nothing lent, nobody waiting, nothing being opened: eviction would hurt nobody. */
  get settled(): boolean {
    return this.#conns.lent === 0 && this.#waiters.length === 0 && this.#connecting === 0;
  }

  /** Lends a connection, waiting in FIFO order behind earlier callers when none is free. */
  async acquire(options: WaitOptions): Promise<PooledConnection> {
    if (this.#drain.closed) throw new ClosedError('connection pool');
    let lastError: unknown;
    for (let attempt = 0; attempt < MAX_CHECKOUT_ATTEMPTS; attempt++) {
      // Only take an idle connection directly when nobody queued earlier: FIFO.
      const conn =
        (this.#waiters.length === 0 ? this.#popIdle() : undefined) ?? (await this.#waiters.wait(options));
      try {
        const preparing = prepareCheckout(conn, options.schema ?? null);
        if (preparing) await preparing;
        return conn;
      } catch (err) {
        lastError = err;
        // The connection broke between checkout and use; it is closed and the caller gets
        // another one. Its error is passed on only if that keeps happening.
        this.#destroy(conn, 'dead');
      }
    }
    throw lastError;
  }

  /** Whether {@link tryAcquire} would answer null at once (`PoolWaiters.turnAwayNow`); false when closed. */
  get refusesNow(): boolean {
    return !this.#drain.closed && this.#waiters.turnAwayNow;
  }

  /**
   * Lends a ready idle connection (`PoolConnections.takeReady`: no ping due) at once when
   * nobody queued earlier, else undefined. With a schema (Postgres only: the long way reports
   * any other), it carries the checkout's preface to its first statement (`setCheckoutPreface`).
   */
  lendReady(now: number, schema: string | null): PooledConnection | undefined {
    const postgresIfSchema = schema === null || this.kind === 'postgres';
    if (this.#waiters.length > 0 || this.#drain.closed || !postgresIfSchema) return undefined;
    const conn = this.#conns.takeReady(now, this.#options.maxLifetimeMs);
    if (conn === undefined) return undefined;
    this.lastUsedAt = now;
    if (schema !== null) setCheckoutPreface(conn.raw, schema);
    return conn;
  }

  /**
   * Lends a connection without waiting for a slot: an idle one, or a new one opened with a
   * free slot or one reclaimed from another pool's idle connection. Null when the pool is
   * at its maximum, has callers queued, or the budget has nothing to give.
   */
  async tryAcquire(schema: string | null): Promise<PooledConnection | null> {
    if (this.#drain.closed) throw new ClosedError('connection pool');
    try {
      for (let attempt = 0; attempt < MAX_CHECKOUT_ATTEMPTS; attempt++) {
        if (this.#waiters.length > 0) return null;
        let conn = this.#popIdle();
        if (!conn) {
          if (this.#total() >= this.maxConnections) return null;
          this.#hooks.checkConnect(this);
          // Count the attempt before the await so concurrent callers respect the maximum.
          this.#connecting++;
          let slot = false;
          try {
            slot = await this.#budget.tryTake(this);
          } finally {
            this.#connecting--;
          }
          if (!slot) return null;
          try {
            conn = await this.#connectWithSlot();
          } catch (err) {
            if (err instanceof FleetBudgetError) return null; // no fleet lease: like a full budget
            this.#connectFailed(err);
            throw err;
          }
          this.#hooks.onConnect(this, undefined);
          this.#markBusy(conn);
        }
        try {
          const preparing = prepareCheckout(conn, schema);
          if (preparing) await preparing;
          return conn;
        } catch {
          this.#destroy(conn, 'dead');
        }
      }
      return null;
    } finally {
      // Whatever it counted while it tried (a connect, a slot asked for) is gone now.
      this.#afterDrop();
    }
  }

  /** Gives a lent connection back; with an error it is closed instead. Idempotent. */
  release(conn: PooledConnection, err?: unknown): void {
    if (!this.#conns.giveBack(conn)) return;
    const now = Date.now();
    this.lastUsedAt = now;
    const reason = err === undefined ? unfitReason(conn.raw) : 'released-with-error';
    if (reason !== undefined) {
      this.#destroy(conn, reason);
      this.#waiters.pump();
      this.#checkSettled();
      return;
    }
    this.#checkin(conn, now);
  }

  /**
   * Opens connections up to `count` with free budget slots only (no reclaim, no waiting),
   * for prewarm and the minimum. Resolves to how many were opened; rejects with the first
   * connect error.
   */
  async warm(count: number): Promise<number> {
    let opened = 0;
    const attempts: Promise<void>[] = [];
    this.#hooks.checkConnect(this);
    // #connectWithSlot counts itself in #total() synchronously, before its first await.
    while (!this.#drain.closed && this.#total() < Math.min(count, this.maxConnections)) {
      if (!this.#budget.tryTakeFree()) break;
      attempts.push(
        this.#connectWithSlot().then(
          (conn) => {
            opened++;
            this.#connected(conn);
          },
          (err: unknown) => {
            if (err instanceof FleetBudgetError) return; // warm only takes free leases
            this.#connectFailed(err);
            throw err;
          },
        ),
      );
    }
    await Promise.all(attempts);
    return opened;
  }

  // Tops the pool up to its minimum from free budget slots, in the background.
  #ensureMinimum(): void {
    if (this.#drain.closed || this.#total() >= this.#options.minConnections) return;
    this.warm(this.#options.minConnections).catch(() => {
      // A failed top-up was already counted by the circuit breaker; the next one retries.
    });
  }

  /** Closes idle connections past the idle timeout (above the minimum) or their lifetime. */
  sweep(now: number, idleTimeoutMs: number): void {
    // Most cached pools hold nothing idle: keep their sweep to a length check.
    for (const conn of this.#conns.idle.length === 0 ? [] : [...this.#conns.idle]) {
      if (now - conn.createdAt >= this.#options.maxLifetimeMs) this.#recycle(conn);
      else if (now - conn.idleSince >= idleTimeoutMs && this.#conns.size > this.#options.minConnections)
        this.#destroy(conn, 'idle-timeout');
    }
    this.#ensureMinimum();
  }

  /** BudgetMember: closes an idle connection whose slot goes to another pool. */
  surrender(slot: IdleSlot): Promise<void> {
    const conn = slot as PooledConnection;
    // The budget took it off its own list already; unlink is harmless there.
    this.#conns.unlink(conn);
    return this.#drain.closeConnection(conn.raw, () => this.#hooks.onClose(this, 'reclaim'));
  }

  counts(): PoolCounts {
    return this.#conns.counts(this.#connecting, this.#waiters.length);
  }

  /**
   * Stops the pool: waiters get `ClosedError`, idle connections close now, lent ones when
   * they are released (or now, with `force`). Resolves once every connection is closed.
   */
  close(reason: CloseReason, force = false): Promise<void> {
    this.#drain.close(reason);
    this.#waiters.close(new ClosedError('connection pool'));
    for (const conn of [...this.#conns.idle]) this.#destroy(conn, reason);
    if (force) for (const conn of this.#conns.lentConnections()) this.#destroy(conn, reason);
    return this.#drain.drained();
  }

  // Busy, idle, being opened, or asked of the budget (not closing): what counts against the max.
  #total(): number {
    return this.#conns.size + this.#connecting + this.#waiters.requested;
  }

  #popIdle(): PooledConnection | undefined {
    const now = Date.now();
    for (let conn = this.#conns.popIdle(); conn; conn = this.#conns.popIdle()) {
      if (!conn.raw.alive) this.#destroy(conn, 'dead');
      else if (now - conn.createdAt >= this.#options.maxLifetimeMs) this.#recycle(conn);
      else {
        this.#markBusy(conn);
        return conn;
      }
    }
    // Anything closed above may leave waiters needing a fresh connection.
    if (this.#waiters.length > 0) this.#waiters.pump();
    return undefined;
  }

  #markBusy(conn: PooledConnection): void {
    this.#conns.lend(conn);
    this.lastUsedAt = Date.now();
  }

  // A connection opened for no caller in particular: reported, then checked in.
  #connected(conn: PooledConnection): void {
    this.#hooks.onConnect(this, undefined);
    this.#checkin(conn);
  }

  // Opens one connection with a slot the caller already holds. On failure the slot is
  // given back before the error is thrown.
  async #connectWithSlot(leaseWanted?: () => boolean): Promise<PooledConnection> {
    this.#connecting++;
    let raw: RawConnection;
    try {
      raw = await this.#connector.open(leaseWanted);
    } catch (err) {
      this.#connecting--;
      this.#budget.free();
      this.#drain.check();
      this.#afterDrop();
      throw err;
    }
    this.#connecting--;
    const conn = this.#conns.adopt(raw, this);
    // The driver always listens for errors; this makes a dead idle connection leave at once.
    raw.onError((err) => {
      if (conn.state === 'idle') this.#destroy(conn, 'dead');
      this.#hooks.onConnectionError(this, err);
    });
    this.#hooks.onOpen(this);
    if (this.#drain.closed) {
      this.#destroy(conn, this.#drain.reason);
      throw new ClosedError('connection pool');
    }
    return conn;
  }

  // A connection free again (released or newly opened) goes to this pool's oldest waiter;
  // else it closes if another pool (or process) waits for a slot on it; else it is parked.
  #checkin(conn: PooledConnection, now = Date.now()): void {
    // Checked in counts as used: a connection passed straight from one caller to the next
    // is known to be working and needs no ping.
    conn.idleSince = now;
    if (this.#drain.closed || !conn.raw.alive) {
      this.#destroy(conn, this.#drain.closed ? this.#drain.reason : 'dead');
    } else if (now - conn.createdAt >= this.#options.maxLifetimeMs) {
      this.#recycle(conn);
    } else if (this.#waiters.length > 0 && this.#waiters.serve(conn)) {
      return;
    } else if (this.#budget.wantsBack(conn)) {
      this.#destroy(conn, 'handover');
    } else {
      this.#conns.park(conn);
    }
    if (this.#waiters.length > 0) this.#waiters.pump();
    this.#checkSettled();
  }

  #recycle(conn: PooledConnection): void {
    // A rotated secret is picked up by the replacement.
    this.#connector.forgetUrl();
    this.#destroy(conn, 'lifetime');
  }

  // Closes a connection (cancelling what runs on it first); its budget slot is freed only
  // once the close has completed, that is once the server has ended the session.
  #destroy(conn: PooledConnection, reason: CloseReason): void {
    if (conn.state === 'closing') return;
    this.#conns.unlink(conn);
    this.#afterDrop();
    const closed = () => {
      this.#budget.free();
      this.#hooks.onClose(this, reason);
    };
    this.#drain.closeConnection(conn.raw, closed, sideCancelFor(conn.raw, this.#sideCancel));
  }

  // A connect failed: the breaker hears of it, unless the pool was merely closed meanwhile
  // or no lease of the fleet budget was to be had (the server is fine, only busy).
  #connectFailed(err: unknown): Error | undefined {
    if (err instanceof ClosedError || err instanceof FleetBudgetError) return undefined;
    return this.#hooks.onConnect(this, err);
  }

  #checkSettled(): void {
    if (!this.#drain.closed && this.settled) this.#hooks.onSettled(this);
  }

  // The pool's total dropped (a connection closed, a connect failed or was given up): a
  // waiter no earlier request covered may need a slot, and the pool may have settled. Run
  // once, after the current call's bookkeeping (callers destroy inside pump and #popIdle).
  #afterDrop(): void {
    if (this.#afterDropQueued || this.#drain.closed) return;
    this.#afterDropQueued = true;
    queueMicrotask(() => {
      this.#afterDropQueued = false;
      this.#waiters.pump();
      this.#checkSettled();
    });
  }
}
