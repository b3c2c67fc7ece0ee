/**
 * Weighted deficit round robin (Shreedhar & Varghese, 1995) over the tenants that have
 * jobs ready. Every pick costs 1; a tenant's quantum is its weight, so on its turn a
 * tenant of weight 3 is picked three times before the turn passes on, and two
 * backlogged tenants of weights 3 and 1 are picked 3:1 in every window of picks. (The
 * worker serves each pick as a run of up to `jobsPerTurn` jobs of the tenant; a tenant
 * whose runs are shorter by design is given proportionally more weight here, so jobs
 * keep the weights' ratio: see `TenantDirectory.turnLength`.)
 *
 * Only *eligible* tenants sit in the round: ready, under their per-process cap and not
 * blocked (their connection pool could not lend). A tenant leaves the round when it
 * stops being eligible and rejoins at the tail when it is eligible again, so skipping
 * costs nothing per pick and no tenant waits more than one round (the sum of the
 * weights of the others) once it is eligible: nobody starves. One exception: a tenant
 * blocked for want of a connection keeps its turn (that pick is not charged) and rejoins
 * at the head, oldest blocked first, so the tenant holding a scarce connection cannot
 * overtake it; a tenant whose database failed spends its turn and rejoins at the tail.
 *
 * Pure and synchronous: no I/O, no timers, no randomness. The worker tells it what
 * happened (ready, empty, started, finished, blocked) and asks whom to serve next.
 */
import { describe, ValidationError } from '../reporting/errors.js';

/** What the picker needs to know about one tenant. */
export interface PickerTenant {
  readonly slug: string;
  /** Fair-share weight, an integer ≥ 1 (the org's `weight`). */
  readonly weight: number;
  /** Jobs of this tenant this process may run at once, ≥ 1. */
  readonly cap: number;
}

interface TenantState {
  slug: string;
  weight: number;
  cap: number;
  /** Picks handed out and not yet finished (fetching or running). */
  running: number;
  /** Picks left in the current turn. */
  deficit: number;
  ready: boolean;
  /**
   * The picker's stamps (see {@link FairPicker.stamp}) of the latest news that the tenant
   * had jobs, and that it had none: whichever is later decides, so an answer the engine
   * gave before another cannot undo it, whatever order the two arrive in.
   */
  readyAsOf: number;
  emptyAsOf: number;
  blocked: boolean;
  /** Blocked keeping its turn: rejoins the round at the head when unblocked. */
  keepsTurn: boolean;
  /** Left the round at its cap with picks left in its turn: rejoins at the head. */
  cappedMidTurn: boolean;
  /** Whether the state sits in the round (the linked list below). */
  inRound: boolean;
  prev: TenantState | null;
  next: TenantState | null;
}

/** A snapshot of one tenant, for tests and stats. */
export interface PickerTenantStats {
  slug: string;
  weight: number;
  cap: number;
  running: number;
  ready: boolean;
  blocked: boolean;
}

export class FairPicker {
  readonly #tenants = new Map<string, TenantState>();
  // The round: a doubly linked list, so removal from the middle and rotation are O(1).
  #head: TenantState | null = null;
  #tail: TenantState | null = null;
  #size = 0;
  /** The picker's time: see {@link stamp}. */
  #clock = 0;
  /** Tenants blocked now, oldest first (unblocking is free when there are none: it runs per release). */
  readonly #blocked = new Set<TenantState>();

  /**
   * Adds a tenant or updates its weight and cap. A new tenant starts not ready: call
   * {@link markReady} once it has jobs.
   */
  upsert(tenant: PickerTenant): void {
    checkPositiveInteger('weight', tenant.slug, tenant.weight);
    checkPositiveInteger('cap', tenant.slug, tenant.cap);
    const state = this.#tenants.get(tenant.slug);
    if (state === undefined) {
      this.#tenants.set(tenant.slug, {
        slug: tenant.slug,
        weight: tenant.weight,
        cap: tenant.cap,
        running: 0,
        deficit: 0,
        ready: false,
        readyAsOf: 0,
        emptyAsOf: 0,
        blocked: false,
        keepsTurn: false,
        cappedMidTurn: false,
        inRound: false,
        prev: null,
        next: null,
      });
      return;
    }
    state.weight = tenant.weight;
    state.cap = tenant.cap;
    state.deficit = Math.min(state.deficit, state.weight);
    this.#sync(state);
  }

  /** Forgets a tenant (deactivated, deleted). Its running picks are forgotten too. */
  remove(slug: string): void {
    const state = this.#tenants.get(slug);
    if (state === undefined) return;
    if (state.inRound) this.#unlink(state);
    this.#blocked.delete(state);
    this.#tenants.delete(slug);
  }

  has(slug: string): boolean {
    return this.#tenants.has(slug);
  }

  /**
   * A point in the picker's own time: every call returns a larger number. Take one just
   * before asking the engine (a fetch, a read of its ready index) and pass it with the
   * answer to {@link markReady} or {@link markEmpty}: the news is then as of when it was
   * asked for, not when it arrived.
   */
  stamp(): number {
    return ++this.#clock;
  }

  /**
   * The tenant may have jobs ready, as of `asOf` (a {@link stamp}; now by default). News
   * older than its latest {@link markEmpty} is ignored: a read of the ready index sent
   * before the take of a partition's last job lists the tenant even when its reply comes
   * after. (Nothing is lost by that: a job enqueued since wakes a read asked for later.)
   * Unknown slugs are ignored (upsert them first).
   */
  markReady(slug: string, asOf: number = this.stamp()): void {
    const state = this.#tenants.get(slug);
    if (state === undefined || asOf <= state.emptyAsOf) return;
    state.readyAsOf = Math.max(state.readyAsOf, asOf);
    if (state.ready) return;
    state.ready = true;
    this.#sync(state);
  }

  /**
   * The tenant had nothing to fetch, as of `asOf` (a {@link stamp} taken before the fetch
   * was sent; now by default). It leaves the round and, as in DRR, loses what is left of
   * its turn: an idle tenant does not bank credit for a later burst. News of jobs asked for
   * later (a job enqueued while the fetch was in flight) wins: the tenant stays ready.
   */
  markEmpty(slug: string, asOf: number = this.stamp()): void {
    const state = this.#tenants.get(slug);
    if (state === undefined || asOf < state.readyAsOf) return;
    state.emptyAsOf = Math.max(state.emptyAsOf, asOf);
    state.ready = false;
    state.deficit = 0;
    state.cappedMidTurn = false;
    this.#sync(state);
  }

  /**
   * The tenant was just picked and its pool cannot lend now: skip it until
   * {@link unblock}. By default it keeps its turn: that pick is not charged, and once
   * unblocked the tenant rejoins the round at the head (tenants blocked earlier ahead of
   * later ones), so a tenant that waits for a connection is not overtaken, pick after
   * pick, by the tenant holding it. With `keepTurn: false` (its database failed, rather
   * than its pool being busy) the pick is spent and it rejoins at the tail, so a broken
   * tenant is not retried first at every release.
   */
  block(slug: string, { keepTurn = true }: { keepTurn?: boolean } = {}): void {
    const state = this.#tenants.get(slug);
    if (state === undefined || state.blocked) return;
    state.blocked = true;
    state.keepsTurn = keepTurn;
    if (keepTurn) state.deficit += 1;
    this.#blocked.add(state);
    this.#sync(state);
  }

  unblock(slug: string): void {
    const state = this.#tenants.get(slug);
    if (state === undefined || !state.blocked) return;
    this.#blocked.delete(state);
    this.#rejoin(state);
  }

  /**
   * Unblocks the tenant that has waited longest for a connection (its pool was busy; one
   * blocked because its database failed only when no other is blocked): one connection
   * came back, so one tenant may borrow it. Unblocking them all at every release made
   * every idle slot try, and fail, to borrow for each blocked tenant, once per job.
   */
  unblockOne(): void {
    // A tenant unblocked that cannot rejoin the round (it ran dry or is at its cap
    // meanwhile) takes no connection: the next one is unblocked too.
    for (;;) {
      let chosen: TenantState | undefined;
      for (const state of this.#blocked) {
        chosen ??= state;
        if (state.keepsTurn) {
          chosen = state;
          break;
        }
      }
      if (chosen === undefined) return;
      this.#blocked.delete(chosen);
      this.#rejoin(chosen);
      if (chosen.inRound) return;
    }
  }

  /** Unblocks every tenant (time to try again: connections may have come back elsewhere). */
  unblockAll(): void {
    if (this.#blocked.size === 0) return;
    const states = [...this.#blocked];
    this.#blocked.clear();
    // Prepended newest first, so the tenant blocked first ends up at the head.
    for (let i = states.length - 1; i >= 0; i--) this.#rejoin(states[i]!);
  }

  /** Whether some tenant is blocked (its pool could not lend) right now. */
  get hasBlocked(): boolean {
    return this.#blocked.size > 0;
  }

  /**
   * The next tenant to serve, counted as running until {@link finish}; null when no
   * tenant is eligible.
   */
  pick(): string | null {
    const state = this.#head;
    if (state === null) return null;
    // A fresh turn: the tenant gets its quantum. Deficits are whole numbers (cost 1).
    if (state.deficit < 1) state.deficit += state.weight;
    state.deficit -= 1;
    state.running += 1;
    if (state.running >= state.cap) {
      // At its cap: out of the round until a pick finishes; it keeps what is left of its
      // turn, and its place: back at the head, else a tenant whose picks last longer (a
      // slower Redis master, slower jobs) would lose its place at every cap and fall
      // below its weight.
      state.cappedMidTurn = state.deficit >= 1;
      this.#unlink(state);
    } else if (state.deficit < 1) {
      this.#rotate(state);
    }
    return state.slug;
  }

  /** A pick of `slug` finished (the job settled, or there was nothing to fetch). */
  finish(slug: string): void {
    const state = this.#tenants.get(slug);
    if (state === undefined || state.running === 0) return;
    state.running -= 1;
    this.#sync(state);
  }

  /**
   * A pick of `slug` finished, and the same caller would pick again at once: when the
   * round would hand out `slug` next, the pick is taken for it (exactly `finish(slug)`
   * then a `pick()` that answers `slug`) and true is returned. Otherwise nothing changes
   * (the pick still counts as running until {@link finish}) and false is returned. Lets
   * a worker finish one job and fetch the tenant's next in one engine call without
   * bending the round.
   */
  repick(slug: string): boolean {
    const state = this.#tenants.get(slug);
    if (state === undefined || state.running === 0) return false;
    state.running -= 1;
    this.#sync(state);
    if (this.#head === state) {
      this.pick();
      return true;
    }
    // Back as it was: still running, and (if that puts it at its cap) out of the round.
    state.running += 1;
    this.#sync(state);
    return false;
  }

  /** Picks of `slug` handed out and not finished. */
  running(slug: string): number {
    return this.#tenants.get(slug)?.running ?? 0;
  }

  /** Whether some tenant can be picked now. */
  get hasEligible(): boolean {
    return this.#head !== null;
  }

  /** How many tenants sit in the round now. */
  get eligibleCount(): number {
    return this.#size;
  }

  stats(): PickerTenantStats[] {
    return [...this.#tenants.values()].map(({ slug, weight, cap, running, ready, blocked }) => ({
      slug,
      weight,
      cap,
      running,
      ready,
      blocked,
    }));
  }

  #eligible(state: TenantState): boolean {
    return state.ready && !state.blocked && state.running < state.cap;
  }

  /** Puts the state in the round, or takes it out, to match its eligibility. */
  #sync(state: TenantState): void {
    const eligible = this.#eligible(state);
    if (eligible && !state.inRound) {
      this.#link(state, state.cappedMidTurn ? 'head' : 'tail');
      state.cappedMidTurn = false;
    } else if (!eligible && state.inRound) this.#unlink(state);
  }

  /** An unblocked tenant goes back to the round: to its head if it kept its turn. */
  #rejoin(state: TenantState): void {
    state.blocked = false;
    if (!state.keepsTurn) {
      this.#sync(state);
      return;
    }
    state.keepsTurn = false;
    if (this.#eligible(state) && !state.inRound) this.#link(state, 'head');
  }

  /** Puts a state that is out of the round into it, at the head or the tail. */
  #link(state: TenantState, end: 'head' | 'tail'): void {
    if (end === 'head') {
      state.prev = null;
      state.next = this.#head;
      if (this.#head === null) this.#tail = state;
      else this.#head.prev = state;
      this.#head = state;
    } else {
      state.prev = this.#tail;
      state.next = null;
      if (this.#tail === null) this.#head = state;
      else this.#tail.next = state;
      this.#tail = state;
    }
    state.inRound = true;
    this.#size += 1;
  }

  #unlink(state: TenantState): void {
    if (state.prev === null) this.#head = state.next;
    else state.prev.next = state.next;
    if (state.next === null) this.#tail = state.prev;
    else state.next.prev = state.prev;
    state.prev = null;
    state.next = null;
    state.inRound = false;
    this.#size -= 1;
  }

  #rotate(state: TenantState): void {
    if (this.#tail === state) return;
    this.#unlink(state);
    this.#link(state, 'tail');
  }
}

function checkPositiveInteger(field: string, slug: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(
      field,
      `Expected \`${field}\` of tenant ${JSON.stringify(slug)} to be an integer ≥ 1, got ${describe(value)}`,
    );
  }
}
