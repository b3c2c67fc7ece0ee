/**
 * bull-board over the partitions, registered on demand. bull-board has no pagination:
 * every open tab polls its queue list and each registered queue costs several Redis
 * commands per poll, so registering all of a fleet's partitions (thousands) would make
 * the list slow and huge. Registered instead, refreshed every `REFRESH_MS`:
 * - the top N partitions by backlog (jobs waiting), over every queue;
 * - partitions with jobs active or failed among the tenants the fleet page knows of
 *   (the backlog read, and the tenants whose jobs failed in the processes' snapshots);
 * - the tenants searched for (`search()`), the last `MAX_SEARCHED` of them.
 * Partitions are grouped under their logical queue (`delimiter: '.'`), as bull-board
 * shows `reports.acme` as `reports › acme`.
 *
 * A retry, promote or add clicked here goes through BullMQ's own API into the
 * partition; the engine's marker sweep (src/queue/bullmq/marker-sweep.ts) lists the
 * tenant in the ready index so a fleet worker runs it.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { partitionName } from '../src/queue/bullmq/partitions.js';
import type { FleetView } from './fleet-view.js';

const REFRESH_MS = 5000;
const MAX_SEARCHED = 50;

/** The bull-board mount and the partitions it shows. */
export class PartitionBoard {
  readonly #engine: BullMqEngine;
  readonly #view: FleetView;
  readonly #top: number;
  readonly #readOnly: boolean;
  readonly #redis: Redis;
  readonly #ownsRedis: boolean;
  readonly #queues = new Map<string, Queue>();
  /** Map order is recency. */
  readonly #searched = new Map<string, { queue: string; tenant: string }>();
  #board: ReturnType<typeof createBullBoard> | null = null;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | null = null;
  #closed = false;

  constructor(engine: BullMqEngine, view: FleetView, top: number, readOnly: boolean) {
    this.#engine = engine;
    this.#view = view;
    this.#top = top;
    this.#readOnly = readOnly;
    const { connection } = engine.options;
    this.#ownsRedis = typeof connection === 'string';
    this.#redis =
      typeof connection === 'string'
        ? new Redis(connection, { connectionName: 'tenant-fleet:dashboard', maxRetriesPerRequest: null })
        : connection;
    if (this.#ownsRedis) this.#redis.on('error', () => {});
  }

  /** Mounts bull-board at `<prefix>/queues` of `app`. */
  async mount(app: FastifyInstance, fleetPageUrl: string): Promise<void> {
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(`${app.prefix}/queues`);
    this.#board = createBullBoard({
      queues: [],
      serverAdapter,
      options: {
        uiConfig: {
          boardTitle: 'tenant-fleet',
          miscLinks: [{ text: 'Fleet', url: fleetPageUrl }],
        },
      },
    });
    await app.register(serverAdapter.registerPlugin() as never, { prefix: '/queues' });
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh().catch(() => {}), REFRESH_MS);
    this.#timer.unref();
  }

  /** The partition names registered now. */
  get registered(): string[] {
    return [...this.#queues.keys()].sort();
  }

  /** Registers `tenant`'s partition of every known queue; resolves to their names. */
  async search(tenant: string): Promise<string[]> {
    const page = await this.#view.read();
    const queues = Object.keys(page.backlog);
    for (const queue of queues) {
      const key = partitionName(queue, tenant);
      this.#searched.delete(key);
      this.#searched.set(key, { queue, tenant });
      if (this.#searched.size > MAX_SEARCHED) this.#searched.delete(this.#searched.keys().next().value!);
    }
    await this.refresh();
    return queues.map((queue) => partitionName(queue, tenant));
  }

  /** Recomputes the registered partitions (one refresh at a time). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    if (this.#closed || !this.#board) return;
    const page = await this.#view.read();
    const wanted = new Map<string, { queue: string; tenant: string }>();
    const add = (queue: string, tenant: string) =>
      wanted.set(partitionName(queue, tenant), { queue, tenant });
    for (const t of page.backlogTenants.slice(0, this.#top)) add(t.queue, t.tenant);
    for (const t of page.backlogTenants) if (t.active > 0 || t.failed > 0) add(t.queue, t.tenant);
    for (const t of page.tenants) if (t.failed > 0) add(t.queue, t.tenant);
    for (const { queue, tenant } of this.#searched.values()) add(queue, tenant);
    const same = wanted.size === this.#queues.size && [...wanted.keys()].every((k) => this.#queues.has(k));
    if (same) return;
    const { prefix } = this.#engine.options;
    for (const name of wanted.keys())
      if (!this.#queues.has(name))
        this.#queues.set(
          name,
          new Queue(name, { connection: this.#redis, prefix, skipVersionCheck: true } as never),
        );
    const dropped = [...this.#queues].filter(([name]) => !wanted.has(name));
    for (const [name] of dropped) this.#queues.delete(name);
    this.#board.replaceQueues(
      [...this.#queues.values()].map(
        (queue) => new BullMQAdapter(queue, { readOnlyMode: this.#readOnly, delimiter: '.' }),
      ),
    );
    await Promise.allSettled(dropped.map(([, queue]) => queue.close()));
  }

  /** Closes the partitions' Queue objects and the connection it opened; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#refreshing?.catch(() => {});
    await Promise.allSettled([...this.#queues.values()].map((queue) => queue.close()));
    this.#queues.clear();
    if (this.#ownsRedis) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
