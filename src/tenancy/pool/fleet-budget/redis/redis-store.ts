/**
 * The lease store in Redis: one Lua script per step (lease-scripts.ts), the messages on
 * pub/sub channels. It remembers the epoch of the Redis lease state it last saw and passes
 * it with every take and renewal, so a Redis that restarted empty fences new leases until
 * the holders have re-registered theirs.
 */
import type { Redis } from 'ioredis';
import type {
  LeaseStore,
  LeaseStoreListener,
  RenewAnswer,
  RenewRequest,
  TakeAnswer,
} from '../lease-store.js';
import {
  fleetKeys,
  RELEASE,
  RENEW,
  releasedChannel,
  type ServerKeys,
  serverKeys,
  TAKE,
  WITHDRAW,
  wantChannel,
} from './lease-scripts.js';
import { RedisLink } from './redis-link.js';

/** The fleet budget's leases in Redis (a URL, or an ioredis instance left open on close). */
export class RedisLeaseStore implements LeaseStore {
  readonly name = 'Redis';
  readonly #link: RedisLink;
  readonly #prefix: string;
  readonly #process: string;
  readonly #keys = new Map<string, ServerKeys>();
  // The epoch of the Redis lease state this process last saw ('' before its first call).
  #epoch = '';
  #seq = 0;

  constructor(
    redis: string | Redis,
    prefix: string,
    process: string,
    timeoutMs: number,
    listener: LeaseStoreListener,
  ) {
    this.#prefix = prefix;
    this.#process = process;
    const released = releasedChannel(prefix);
    this.#link = new RedisLink(redis, timeoutMs, (channel, message) => {
      if (channel === released) {
        listener.released(message);
        return;
      }
      let asked: { server?: unknown; from?: unknown };
      try {
        asked = JSON.parse(message) as typeof asked;
      } catch {
        return;
      }
      if (typeof asked.server === 'string' && typeof asked.from === 'string') {
        listener.wanted(asked.server, asked.from);
      }
    });
    this.#link.subscribe(released, wantChannel(prefix));
  }

  async take(server: string, limit: number, id: string, ticket: string, ttlMs: number): Promise<TakeAnswer> {
    const { leases, queue, queueExpiry, seq } = this.#serverKeys(server);
    const { epoch, fence } = fleetKeys(this.#prefix);
    const answer = (await this.#link.run(
      TAKE,
      [leases, queue, queueExpiry, seq, epoch, fence],
      [id, limit, ttlMs, ticket, ttlMs, this.#epoch, this.#newEpoch()],
    )) as [number, number, number, string];
    this.#epoch = answer[3];
    return { taken: answer[0] === 1, live: answer[1] };
  }

  async release(server: string, id: string): Promise<void> {
    const { leases, queue } = this.#serverKeys(server);
    await this.#link.run(RELEASE, [leases, queue], [id, releasedChannel(this.#prefix), server]);
  }

  async withdraw(server: string, ticket: string): Promise<void> {
    const { queue, queueExpiry } = this.#serverKeys(server);
    await this.#link.run(WITHDRAW, [queue, queueExpiry], [ticket, releasedChannel(this.#prefix), server]);
  }

  async renew(ttlMs: number, servers: readonly RenewRequest[]): Promise<RenewAnswer[]> {
    const args: Array<string | number> = [ttlMs, this.#epoch, this.#newEpoch()];
    for (const { limit, ids } of servers) args.push(limit, ids.length, ...ids);
    const { epoch, fence } = fleetKeys(this.#prefix);
    const [seen, ...answer] = (await this.#link.run(
      RENEW,
      [epoch, fence, ...servers.map(({ server }) => this.#serverKeys(server).leases)],
      args,
    )) as [string, ...Array<[number, string[]]>];
    this.#epoch = seen;
    return answer.map(([live, lost]) => ({ live, lost }));
  }

  async want(server: string, from: string): Promise<void> {
    await this.#link.publish(wantChannel(this.#prefix), JSON.stringify({ server, from }));
  }

  async close(): Promise<void> {
    this.#link.close();
  }

  #newEpoch(): string {
    return `${this.#process}:epoch:${++this.#seq}`;
  }

  #serverKeys(server: string): ServerKeys {
    let keys = this.#keys.get(server);
    if (!keys) {
      keys = serverKeys(this.#prefix, server);
      this.#keys.set(server, keys);
    }
    return keys;
  }
}
