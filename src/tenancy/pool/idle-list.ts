/**
 * The budget's idle connections, least recently used first, as a list linked through the
 * connections themselves. Every checkout takes a connection off this list and every
 * release puts one back: a `Set` written twice per checkout keeps reallocating its table
 * as deleted entries pile up (measured on the TenantPools hit path: about half of its
 * CPU went there). Linked through the slots, a move is a few pointer writes and
 * allocates nothing. The order is a `Set`'s: insertion order, re-adding moves to the end.
 */

/** The links an idle slot carries while listed; written by {@link IdleList} only. */
export interface IdleLinks {
  idlePrev?: IdleLinks | undefined;
  idleNext?: IdleLinks | undefined;
  /** On a list right now. */
  idleListed?: boolean;
}

/** An intrusive doubly linked list, oldest first; each slot is on at most one list. */
export class IdleList<T extends IdleLinks> {
  #head: T | undefined;
  #tail: T | undefined;
  #size = 0;

  /** Slots listed. */
  get size(): number {
    return this.#size;
  }

  /** Appends `slot` as the most recent one; does nothing if it is listed already. */
  add(slot: T): void {
    if (slot.idleListed === true) return;
    slot.idleListed = true;
    slot.idlePrev = this.#tail;
    slot.idleNext = undefined;
    if (this.#tail === undefined) this.#head = slot;
    else this.#tail.idleNext = slot;
    this.#tail = slot;
    this.#size++;
  }

  /** Takes `slot` off the list; false when it was not on it. */
  delete(slot: T): boolean {
    if (slot.idleListed !== true) return false;
    const prev = slot.idlePrev as T | undefined;
    const next = slot.idleNext as T | undefined;
    if (prev === undefined) this.#head = next;
    else prev.idleNext = next;
    if (next === undefined) this.#tail = prev;
    else next.idlePrev = prev;
    slot.idlePrev = undefined;
    slot.idleNext = undefined;
    slot.idleListed = false;
    this.#size--;
    return true;
  }

  /** The oldest slot `match` accepts, left on the list. */
  find(match: (slot: T) => boolean): T | undefined {
    for (let slot = this.#head; slot !== undefined; slot = slot.idleNext as T | undefined) {
      if (match(slot)) return slot;
    }
    return undefined;
  }

  /** Every slot, oldest first. */
  toArray(): T[] {
    const slots: T[] = [];
    for (let slot = this.#head; slot !== undefined; slot = slot.idleNext as T | undefined) slots.push(slot);
    return slots;
  }
}
