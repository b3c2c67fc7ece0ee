/**
 * bull-board over the partitions, registered on demand. bull-board has no pagination:
 * every open tab polls its queue list and each registered queue costs several Redis
 * commands per poll, so registering all of a fleet's partitions (thousands) would make
 * the list slow and huge. Registered instead, refreshed every `REFRESH_MS`:
 * - the top N partitions by backlog (jobs waiting), over every queue;
 * - partitions with jobs active or failed among the tenants the fleet page knows of
 *   (the backlog read, and the tenants whose jobs failed in the processes' snapshots);
 * - the top N tenants by throughput (jobs completed), so a quiet fleet still shows some;
 * - the tenants searched for (`search()`), the last `MAX_SEARCHED` of them.
 * Partitions are grouped under their logical queue (`delimiter: '.'`), as bull-board
 * shows `reports.acme` as `reports › acme`.
 *
 * The adapters come from a {@link PartitionAdapters} of the engine: on BullMQ,
 * bull-board's own BullMQAdapter over a `Queue` per partition (a retry, promote or add
 * clicked there goes through BullMQ's own API into the partition, and the engine's
 * marker sweep, src/queue/bullmq/marker-sweep.ts, lists the tenant in the ready index so
 * a fleet worker runs it); on the in-memory engine, a read-only adapter over the
 * engine's partitions (memory-adapter.ts).
 */
import { createBullBoard } from '@bull-board/api';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { partitionName } from '../../src/queue/bullmq/partition/partitions.js';
import type { FleetView } from '../fleet-view.js';
import type { PartitionAdapter, PartitionAdapters } from './partition-adapters.js';

const REFRESH_MS = 5000;
const MAX_SEARCHED = 50;

/** The bull-board mount and the partitions it shows. */
export class PartitionBoard {
  readonly #adapters: PartitionAdapters;
  readonly #view: FleetView;
  readonly #top: number;
  readonly #registered = new Map<string, PartitionAdapter>();
  /** Map order is recency. */
  readonly #searched = new Map<string, { queue: string; tenant: string }>();
  #board: ReturnType<typeof createBullBoard> | null = null;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | null = null;
  #closed = false;

  constructor(adapters: PartitionAdapters, view: FleetView, top: number) {
    this.#adapters = adapters;
    this.#view = view;
    this.#top = top;
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
    return [...this.#registered.keys()].sort();
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
    for (const t of page.top.throughput) add(t.queue, t.tenant);
    for (const { queue, tenant } of this.#searched.values()) add(queue, tenant);
    const same =
      wanted.size === this.#registered.size && [...wanted.keys()].every((k) => this.#registered.has(k));
    if (same) return;
    for (const [name, { queue, tenant }] of wanted)
      if (!this.#registered.has(name)) this.#registered.set(name, this.#adapters.create(queue, tenant));
    const dropped = [...this.#registered].filter(([name]) => !wanted.has(name));
    for (const [name] of dropped) this.#registered.delete(name);
    this.#board.replaceQueues([...this.#registered.values()].map((p) => p.adapter));
    await Promise.allSettled(dropped.map(([, p]) => p.close()));
  }

  /** Closes the partitions' adapters and what the adapters opened; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#refreshing?.catch(() => {});
    await Promise.allSettled([...this.#registered.values()].map((p) => p.close()));
    this.#registered.clear();
    await this.#adapters.close();
  }
}
