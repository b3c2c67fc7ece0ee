/**
 * `setTenantConcurrency` on BullMQ, coalesced (../../cap-batcher.ts): the caps set while a
 * write is in flight go out together, one script call per shard and per 1,000 partitions
 * (scripts.ts SET_CAPS), and each queue is woken once, only when one of its caps changed
 * (or an earlier wake-up of it failed).
 * A worker sets or lifts the cap of every tenant it sees for the first time; with ten
 * thousand tenants that was ten thousand commands, each its own write to the socket.
 *
 * The cap is BullMQ's own per-queue global concurrency of the partition (the `concurrency`
 * field of its `meta` hash), so BullMQ's scripts enforce it fleet-wide.
 */
import { type CapBatch, CapBatcher, type PendingCap, settleCap } from '../../cap-batcher.js';
import { getOrCreate } from '../../get-or-create.js';
import type { KeyLayout } from '../cluster/key-layout.js';
import type { FleetCommands } from '../scripts.js';

/** Partitions per script call: Redis runs a call alone, so none runs long. */
const PER_CALL = 1_000;

/** Writes the caps of partitions, many per script call. */
export class CapWriter {
  readonly #redis: FleetCommands;
  readonly #layout: KeyLayout;
  readonly #wake: (queue: string) => Promise<void>;
  readonly #caps = new CapBatcher((batch) => this.#send(batch));
  /**
   * Queues owed a wake-up: a write that may have changed caps whose wake-up failed (or a
   * script that failed part-way). Their callers were rejected and will set the caps
   * again, which the script then sees unchanged; the wake-up goes out with that write.
   */
  readonly #owed = new Set<string>();

  constructor(redis: FleetCommands, layout: KeyLayout, wake: (queue: string) => Promise<void>) {
    this.#redis = redis;
    this.#layout = layout;
    this.#wake = wake;
  }

  /** Resolves once the caps (null lifts) of checked tenants of a checked queue are written. */
  set(queue: string, caps: ReadonlyArray<readonly [string, number | null]>): Promise<void> {
    return this.#caps.set(queue, caps);
  }

  async #send(batch: CapBatch): Promise<void> {
    await Promise.all([...batch].map(([queue, tenants]) => this.#sendQueue(queue, tenants)));
  }

  /** One queue's caps: a call per shard and per PER_CALL, then one wake-up if any changed. */
  async #sendQueue(queue: string, tenants: Map<string, PendingCap>): Promise<void> {
    const byShard = new Map<number, Array<[string, PendingCap]>>();
    for (const entry of tenants) getOrCreate(byShard, this.#layout.shardOf(entry[0]), () => []).push(entry);
    const calls: Array<Array<[string, PendingCap]>> = [];
    for (const list of byShard.values())
      for (let i = 0; i < list.length; i += PER_CALL) calls.push(list.slice(i, i + PER_CALL));
    const owed = this.#owed.delete(queue);
    const changed = await Promise.all(calls.map((call) => this.#call(queue, call)));
    if (changed.some((n) => n < 0)) this.#owed.add(queue);
    let failure: { error: unknown } | undefined;
    if (owed || changed.some((n) => n > 0))
      await this.#wake(queue).catch((error: unknown) => {
        failure = { error };
        this.#owed.add(queue);
      });
    // A call that failed has rejected its callers already; the others learn whether the
    // wake-up went out (a cap lifted without it frees a place no one hears of).
    for (const [index, call] of calls.entries())
      if (changed[index]! >= 0) for (const [, pending] of call) settleCap(pending, failure);
  }

  /** One script call; resolves to the caps it changed, or -1 once it rejected its callers. */
  async #call(queue: string, call: Array<[string, PendingCap]>): Promise<number> {
    const keys = call.map(([tenant]) => `${this.#layout.partitionHead(queue, tenant)}meta`);
    const caps = call.map(([, pending]) => (pending.cap === null ? '' : String(pending.cap)));
    try {
      return await this.#redis.fleetSetCaps(keys.length, ...keys, ...caps);
    } catch (error) {
      for (const [, pending] of call) settleCap(pending, { error });
      return -1;
    }
  }
}
