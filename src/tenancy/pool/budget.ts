/**
 * The global connection budget: one counter of slots shared by every tenant pool and the
 * shared schema-mode pool of a process. A slot is held from the moment a pool decides to
 * open a connection until that connection has finished closing, so the number of
 * connections the database servers see can never exceed `max`, not even for the few
 * milliseconds a closing connection takes to go away.
 *
 * Slots move instead of waiting for idle timeouts:
 * - a pool that needs a slot while the budget is full *reclaims* the least recently used
 *   idle connection of another pool: that connection is closed and its slot handed over;
 * - when nothing is idle, the request waits in one FIFO queue across all pools, and the
 *   next slot freed (a connection closed for any reason) goes to the head of the queue.
 *
 * The budget knows nothing about drivers: pools register their idle connections here
 * (as {@link IdleSlot}s) so that reclaim can pick the oldest across every pool.
 */
import { ClosedError } from '../../reporting/errors.js';
import { type IdleLinks, IdleList } from './idle-list.js';

/** A pool as the budget sees it: something that can give up one of its idle connections. */
export interface BudgetMember {
  /**
   * Closes `slot`, an idle connection of this member that the budget has already taken off
   * its LRU list, and resolves once it is closed. The slot is *not* freed: it passes to
   * the member that asked for it.
   */
  surrender(slot: IdleSlot): Promise<void>;
}

/** An idle connection registered with the budget (which links it into its idle list). */
export interface IdleSlot extends IdleLinks {
  readonly member: BudgetMember;
}

/** A pending request for a slot; `cancel()` withdraws it when its waiter went away. */
export interface SlotRequest {
  /** Resolves once the slot is the requester's; rejects with {@link ClosedError} on close. */
  readonly granted: Promise<void>;
  /** Withdraws the request if it is still queued; returns whether it was. */
  cancel(): boolean;
}

interface QueuedRequest {
  readonly member: BudgetMember;
  resolve(): void;
  reject(err: Error): void;
}

/** What a budget above this one (the fleet budget) hears of idle connections. */
export interface BudgetWatcher {
  /** Whether a connection coming back must close rather than be parked (another process wants its server). */
  handBack(slot: IdleSlot): boolean;
  /** A connection was parked idle. */
  onIdle(slot: IdleSlot): void;
}

/** A snapshot of the budget, as `TenantPools.stats()` reports it. */
export interface BudgetSnapshot {
  /** The hard cap on connections open at once. */
  max: number;
  /** Slots held: connections open, being opened, or being closed. */
  open: number;
  /** Connections lent out right now. */
  inUse: number;
  /** Connections parked idle in some pool. */
  idle: number;
  /** Requests queued for a slot. */
  waiting: number;
}

/** The global connection budget shared by every pool of one `TenantPools`. */
export class ConnectionBudget {
  /** The hard cap on connections open at once. */
  readonly max: number;
  #open = 0;
  #inUse = 0;
  // In insertion order, so the first is the connection idle the longest: the least
  // recently used one, which reclaim takes first. Adding on release and deleting on
  // checkout keeps that order without any sorting.
  readonly #idle = new IdleList<IdleSlot>();
  readonly #queue: QueuedRequest[] = [];
  #closed = false;
  #reclaims = 0;
  #watcher: BudgetWatcher | undefined;

  constructor(max: number) {
    this.max = max;
  }

  /** How many idle connections were closed so that another pool could have their slot. */
  get reclaims(): number {
    return this.#reclaims;
  }

  /** Whether some pool is waiting for a slot. */
  get hasWaiters(): boolean {
    return this.#queue.length > 0;
  }

  /**
   * Whether a connection coming back (no caller of its own pool waiting) should be closed
   * rather than parked: some pool is waiting for a slot, or the watcher wants it back.
   */
  wantsBack(slot: IdleSlot): boolean {
    return this.#queue.length > 0 || (this.#watcher?.handBack(slot) ?? false);
  }

  /** Lets the fleet budget hear of idle connections and ask for some back. */
  watch(watcher: BudgetWatcher): void {
    this.#watcher = watcher;
  }

  /**
   * Takes the least recently used idle connection that `match` accepts off the idle list,
   * for its owner to close; the caller frees its slot once it has closed.
   */
  takeIdleWhere(match: (slot: IdleSlot) => boolean): IdleSlot | undefined {
    const slot = this.#idle.find(match);
    if (slot === undefined) return undefined;
    this.#idle.delete(slot);
    this.#reclaims++;
    return slot;
  }

  /**
   * Takes a free slot if one is free *and* nobody is queued (a newcomer must not overtake
   * the queue). Never reclaims: used to top pools up to their minimum, which must not
   * steal from busier pools.
   */
  tryTakeFree(): boolean {
    if (this.#closed || this.#queue.length > 0 || this.#open >= this.max) return false;
    this.#open++;
    return true;
  }

  /**
   * Takes a slot that is free right now, even with requests queued or the budget closed,
   * for a session that lives one statement (cancelling an abandoned one): it frees the
   * slot of the connection it cancels sooner than anything queued would get one.
   */
  takeFreeNow(): boolean {
    if (this.#open >= this.max) return false;
    this.#open++;
    return true;
  }

  /**
   * Takes a slot without queueing: a free one, else the slot of the least recently used
   * idle connection of another member, which is closed first. Resolves to false when
   * neither exists.
   */
  async tryTake(member: BudgetMember): Promise<boolean> {
    if (this.tryTakeFree()) return true;
    if (this.#closed) return false;
    return this.#reclaimFor(member);
  }

  /**
   * Asks for a slot: granted at once when one is free or can be reclaimed, else queued
   * FIFO until one is freed. The caller owns the slot once `granted` resolves and must
   * give it back with {@link free} when the connection it opens has closed (or at once
   * if it no longer needs it).
   */
  request(member: BudgetMember): SlotRequest {
    if (this.#closed)
      return { granted: Promise.reject(new ClosedError('connection budget')), cancel: () => false };
    if (this.tryTakeFree()) return { granted: Promise.resolve(), cancel: () => false };
    let entry: QueuedRequest | undefined;
    const granted = new Promise<void>((resolve, reject) => {
      entry = { member, resolve, reject };
    });
    // Claim the idle victim synchronously, before anyone else can, then wait for it to
    // close: only then may the requester open its own connection.
    const victim = this.#takeVictim(member);
    if (victim) {
      this.#surrender(victim).then(entry!.resolve, entry!.resolve);
      return { granted, cancel: () => false };
    }
    this.#queue.push(entry!);
    return {
      granted,
      cancel: () => {
        const index = this.#queue.indexOf(entry!);
        if (index === -1) return false;
        this.#queue.splice(index, 1);
        return true;
      },
    };
  }

  /**
   * Gives a slot back: its connection has finished closing, or it was granted and not
   * used. The head of the queue gets it; with nobody queued it becomes free.
   */
  free(): void {
    const next = this.#queue.shift();
    if (next) next.resolve();
    else this.#open = Math.max(0, this.#open - 1);
  }

  /** Registers a connection that has just become idle, as the most recently used one. */
  addIdle(slot: IdleSlot): void {
    this.#idle.add(slot);
    this.#watcher?.onIdle(slot);
  }

  /** Unregisters an idle connection that is being lent out or closed. */
  removeIdle(slot: IdleSlot): void {
    this.#idle.delete(slot);
  }

  /** Idle connections, least recently used first (for the idle-timeout sweep). */
  idleSlots(): IdleSlot[] {
    return this.#idle.toArray();
  }

  /** Counts a connection as lent out (+1) or given back (-1), for {@link snapshot}. */
  countInUse(delta: 1 | -1): void {
    this.#inUse += delta;
  }

  /** The budget's numbers right now. */
  snapshot(): BudgetSnapshot {
    return {
      max: this.max,
      open: this.#open,
      inUse: this.#inUse,
      idle: this.#idle.size,
      waiting: this.#queue.length,
    };
  }

  /** Rejects every queued request with {@link ClosedError}; later requests are refused. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#queue.splice(0)) entry.reject(new ClosedError('connection budget'));
  }

  async #reclaimFor(member: BudgetMember): Promise<boolean> {
    const victim = this.#takeVictim(member);
    if (!victim) return false;
    await this.#surrender(victim);
    return true;
  }

  // The least recently used idle connection of any *other* member. The requester's own
  // idle connections are skipped: if it had one it would lend it instead of asking.
  #takeVictim(member: BudgetMember): IdleSlot | undefined {
    const slot = this.#idle.find((idle) => idle.member !== member);
    if (slot !== undefined) this.#idle.delete(slot);
    return slot;
  }

  async #surrender(victim: IdleSlot): Promise<void> {
    this.#reclaims++;
    try {
      await victim.member.surrender(victim);
    } catch {
      // surrender never leaves the connection open (close() never rejects); whatever
      // happened, the slot is the requester's now.
    }
  }
}

/**
 * The slot requests one member has queued at the budget, one per caller it could not
 * serve otherwise. Callers leave (served by a released connection, timed out, aborted),
 * so the member withdraws requests it no longer needs, newest first: the older ones keep
 * their place in the budget's queue.
 */
export class MemberRequests {
  readonly #budget: ConnectionBudget;
  readonly #member: BudgetMember;
  readonly #pending: SlotRequest[] = [];

  constructor(budget: ConnectionBudget, member: BudgetMember) {
    this.#budget = budget;
    this.#member = member;
  }

  /** Requests queued or granted but not yet handled. */
  get length(): number {
    return this.#pending.length;
  }

  /**
   * Asks for one slot; `onGranted` runs once it is the member's (it must use the slot or
   * give it back with `free()`). A request rejected because the budget closed is dropped.
   */
  add(onGranted: () => void): void {
    const request = this.#budget.request(this.#member);
    this.#pending.push(request);
    const forget = () => {
      const index = this.#pending.indexOf(request);
      if (index !== -1) this.#pending.splice(index, 1);
    };
    request.granted.then(() => {
      forget();
      onGranted();
    }, forget);
  }

  /** Withdraws queued requests, newest first, until at most `needed` remain. */
  trimTo(needed: number): void {
    while (this.#pending.length > needed) {
      const request = this.#pending.pop()!;
      if (request.cancel()) continue;
      // Already granted, its callback pending: that callback sees the surplus and frees it.
      this.#pending.push(request);
      return;
    }
  }

  /** Withdraws every queued request (a granted one frees its slot when it sees the pool closed). */
  cancelAll(): void {
    for (const request of this.#pending.splice(0)) request.cancel();
  }
}
