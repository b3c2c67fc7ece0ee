/**
 * Where every Redis key of the BullMQ engine lives, so that each script (BullMQ's and the
 * fleet's) touches keys of one hash slot, as Redis Cluster requires.
 *
 * A logical queue `Q` is spread over `shards` slots; a tenant belongs to one shard (a
 * stable hash of its slug), and a shard's hash tag is `{Q}` with one shard, `{Q#s}` or
 * `{Q#s.n}` with several (`#` never appears in a queue name). The `n` is the first that
 * puts shard `s` in the `s`-th of `shards` equal ranges of the 16,384 slots: a cluster
 * made by `redis-cli --cluster create` gives each master one such range, so with as
 * many shards as masters (or a multiple) every master holds its share of the queue. With
 * prefix `P`:
 *
 *   P:{Q#s}:Q.T:wait, :active, …   BullMQ's keys of partition `Q.T` (BullMQ prefix `P:{Q#s}`)
 *   P:{Q#s}:ready                  ZSET tenant → epoch ms from which it may have a job ready
 *   P:{Q#s}:active-tenants         ZSET tenant → when a fetch last announced it
 *   P:{Q#s}:finished               ZSET the queue's completed jobs (`T:id`) → finish time
 *   P:{Q#s}:#batch:<id>            HASH total / completed / failed of a batch's jobs in the shard
 *   P:#batch:<id>                  SET of the shard tags a batch has jobs in
 *   P:#ready:Q                     pub/sub channel that wakes the queue's idle workers
 *
 * The same layout serves a single Redis, where the tags cost nothing.
 */

import { SLOTS, slotOfTag } from './hash-slot.js';

/** FNV-1a (32 bits): a stable, well-spread hash of a slug, the same in every process. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The tag of shard `shard` of `shards`: the first `Q#s`, `Q#s.1`, … whose slot is in range. */
function spreadTag(queue: string, shard: number, shards: number): string {
  const low = Math.floor((shard * SLOTS) / shards);
  const high = Math.floor(((shard + 1) * SLOTS) / shards);
  for (let n = 0; ; n++) {
    const tag = n === 0 ? `${queue}#${shard}` : `${queue}#${shard}.${n}`;
    const slot = slotOfTag(tag);
    if (slot >= low && slot < high) return tag;
  }
}

/** The key names of one engine (prefix and shard count). */
export class KeyLayout {
  readonly prefix: string;
  readonly shards: number;
  /** Per queue, its shards' tags (computed once: a few thousand CRCs at most). */
  readonly #tags = new Map<string, string[]>();

  constructor(prefix: string, shards: number) {
    this.prefix = prefix;
    this.shards = shards;
  }

  /** The shard a tenant's partitions live in, 0 ≤ shard < shards. */
  shardOf(tenant: string): number {
    return this.shards === 1 ? 0 : fnv1a(tenant) % this.shards;
  }

  /** Every shard number of a queue. */
  allShards(): number[] {
    return Array.from({ length: this.shards }, (_, shard) => shard);
  }

  /** The hash tag (without braces) of a queue's shard. */
  tag(queue: string, shard: number): string {
    if (this.shards === 1) return queue;
    let tags = this.#tags.get(queue);
    if (!tags) {
      tags = this.allShards().map((s) => spreadTag(queue, s, this.shards));
      this.#tags.set(queue, tags);
    }
    return tags[shard]!;
  }

  /** The logical queue a tag belongs to (what precedes `#`). */
  queueOfTag(tag: string): string {
    const hash = tag.indexOf('#');
    return hash === -1 ? tag : tag.slice(0, hash);
  }

  /** The key prefix of everything in a queue's shard (BullMQ's `prefix` of its partitions). */
  shardPrefix(queue: string, shard: number): string {
    return this.tagPrefix(this.tag(queue, shard));
  }

  /** `shardPrefix` from a tag. */
  tagPrefix(tag: string): string {
    return `${this.prefix}:{${tag}}`;
  }

  /** BullMQ's `prefix` of a tenant's partition of `queue`. */
  partitionPrefix(queue: string, tenant: string): string {
    return this.shardPrefix(queue, this.shardOf(tenant));
  }

  /** The common start of every BullMQ key of a partition: `P:{Q#s}:Q.T:`. */
  partitionHead(queue: string, tenant: string): string {
    return `${this.partitionPrefix(queue, tenant)}:${queue}.${tenant}:`;
  }

  readyKey(queue: string, shard: number): string {
    return `${this.shardPrefix(queue, shard)}:ready`;
  }

  activeTenantsKey(queue: string, shard: number): string {
    return `${this.shardPrefix(queue, shard)}:active-tenants`;
  }

  /** The completed jobs the shard of the queue keeps (job-moves.ts TRIM_FINISHED). */
  finishedKey(queue: string, shard: number): string {
    return `${this.shardPrefix(queue, shard)}:finished`;
  }

  /** The counts of a batch's jobs in one shard (by tag). */
  batchCountsKey(tag: string, batchId: string): string {
    return `${this.tagPrefix(tag)}:#batch:${batchId}`;
  }

  /** The set of shard tags a batch has jobs in. */
  batchShardsKey(batchId: string): string {
    return `${this.prefix}:#batch:${batchId}`;
  }

  channel(queue: string): string {
    return `${this.prefix}:#ready:${queue}`;
  }

  /**
   * The (queue, tenant) of a partition key `P:{tag}:Q.T:…`, or null when the key is not
   * exactly one of this layout's partition keys (another prefix, a stray key).
   */
  parsePartitionKey(key: string): { queue: string; tenant: string } | null {
    const open = `${this.prefix}:{`;
    if (!key.startsWith(open)) return null;
    const close = key.indexOf('}:', open.length);
    if (close === -1) return null;
    const tag = key.slice(open.length, close);
    const queue = this.queueOfTag(tag);
    const name = `}:${queue}.`;
    if (!key.startsWith(name, close)) return null;
    const start = close + name.length;
    const end = key.indexOf(':', start);
    if (end === -1) return null;
    const tenant = key.slice(start, end);
    return key.startsWith(this.partitionHead(queue, tenant)) ? { queue, tenant } : null;
  }
}

/** Escapes Redis glob characters. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
