/**
 * The fleet budget's connections to Redis: one for the scripts, one subscribed to the
 * budget's channels, and every call bounded in time. A Redis that is down fails a call at
 * once (no offline queue); one that hangs (paused, partitioned) fails it after the bound,
 * so no caller waits on Redis longer than it decided to. A script that ran after its
 * caller gave up only takes a lease nobody renews: it lapses within the lease TTL.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { bounded } from '../bounded.js';

/** Runs the budget's scripts and publishes, each call bounded by `timeoutMs`. */
export class RedisLink {
  readonly client: Redis;
  readonly subscriber: Redis;
  readonly #owned: boolean;
  readonly #timeoutMs: number;
  readonly #shas = new Map<string, string>();
  #connected: Promise<void> | undefined;

  constructor(
    redis: string | Redis,
    timeoutMs: number,
    onMessage: (channel: string, message: string) => void,
  ) {
    this.#owned = typeof redis === 'string';
    this.#timeoutMs = timeoutMs;
    const options = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectionName: 'tenant-fleet-budget',
      retryStrategy: (times: number) => Math.min(50 * times, 1_000),
    };
    this.client = typeof redis === 'string' ? new Redis(redis, options) : redis;
    // The subscriber is ours either way; it queues its SUBSCRIBE until connected and
    // subscribes again after every reconnect.
    this.subscriber =
      typeof redis === 'string'
        ? new Redis(redis, { ...options, enableOfflineQueue: true, maxRetriesPerRequest: null })
        : redis.duplicate({
            enableOfflineQueue: true,
            maxRetriesPerRequest: null,
            retryStrategy: options.retryStrategy,
          });
    if (this.#owned) this.client.on('error', () => {});
    // Errors surface in the calls that fail; a down Redis must not crash the process.
    this.subscriber.on('error', () => {});
    this.subscriber.on('message', onMessage);
  }

  /** Subscribes to the budget's channels (resolves at once; ioredis subscribes when it can). */
  subscribe(...channels: string[]): void {
    this.subscriber.subscribe(...channels).catch(() => {
      // Closed before Redis answered: nothing to listen to any more.
    });
  }

  /** Runs a Lua script (by SHA, loading it on the first NOSCRIPT), within the time bound. */
  run(script: string, keys: string[], args: Array<string | number>): Promise<unknown> {
    let sha = this.#shas.get(script);
    if (!sha) {
      sha = createHash('sha1').update(script).digest('hex');
      this.#shas.set(script, sha);
    }
    const digest = sha;
    const call = async () => {
      try {
        return await this.client.evalsha(digest, keys.length, ...keys, ...args);
      } catch (err) {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        return this.client.eval(script, keys.length, ...keys, ...args);
      }
    };
    return bounded(this.#ready().then(call), this.#timeoutMs, 'Redis');
  }

  /** Publishes within the time bound. */
  publish(channel: string, message: string): Promise<unknown> {
    return bounded(
      this.#ready().then(() => this.client.publish(channel, message)),
      this.#timeoutMs,
      'Redis',
    );
  }

  // Resolves once the client is connected (at once, mostly): a call made while it is still
  // connecting, or reconnecting, waits for that within its own bound instead of failing.
  // One listener however many calls wait.
  #ready(): Promise<void> {
    const client = this.client;
    if (client.status === 'ready') return Promise.resolve();
    if (client.status === 'wait') client.connect().catch(() => {});
    this.#connected ??= new Promise((resolve) =>
      client.once('ready', () => {
        this.#connected = undefined;
        resolve();
      }),
    );
    return this.#connected;
  }

  /** Closes what the link opened (the subscriber always; the client when it made it). */
  close(): void {
    this.subscriber.disconnect();
    if (this.#owned) this.client.disconnect();
  }
}
