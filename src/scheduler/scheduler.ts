/**
 * The cron scheduler: `fanOut({ id, cron, queue, name, data })` fans one job out to every
 * active tenant at each tick of `cron` (croner patterns: 5 fields, or 6 with seconds).
 *
 * Ticks are the pattern's own instants, not the moment a timer fired, so every scheduler
 * process computes the same tick, the same batch id and the same job ids: running two
 * schedulers enqueues each tenant's job once per tick. Each schedule's last handled tick
 * is kept in a {@link ScheduleStateStore}; after downtime, `catchUp: 'latest'` runs one
 * fan-out for the most recent missed tick and `'none'` skips what was missed.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cron } from 'croner';
import { ClosedError, ConfigError, describe, FanOutError, ValidationError } from '../reporting/errors.js';
import { type Logger, silentLogger } from '../reporting/logger.js';
import { durationOption } from '../validate.js';
import { type FanOutResult, type FanOutTarget, fanOutBatchId, fanOutTick } from './fan-out.js';
import {
  type FanOutOptions,
  makeCron,
  type ResolvedFanOutOptions,
  validateFanOut,
} from './fan-out-options.js';
import { MemoryScheduleStore, type ScheduleStateStore } from './state-store.js';

export type { CatchUpPolicy, FanOutOptions } from './fan-out-options.js';

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  /** Where last ticks are kept. @default a new {@link MemoryScheduleStore} */
  store?: ScheduleStateStore;
  /** Tenants read and enqueued per page. @default 500 */
  pageSize?: number;
  /** @default no logging */
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** How long `close()` waits for a running fan-out. @default 30_000 */
  closeTimeoutMs?: number;
}

/** {@link SchedulerOptions} with every default filled in. */
export interface ResolvedSchedulerOptions {
  store: ScheduleStateStore;
  pageSize: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  closeTimeoutMs: number;
}

const DEFAULTS = { pageSize: 500, closeTimeoutMs: 30_000 } satisfies Partial<ResolvedSchedulerOptions>;

/** Fills in the defaults of {@link SchedulerOptions} and checks the numbers. */
export function resolveSchedulerOptions(options: SchedulerOptions = {}): ResolvedSchedulerOptions {
  const pageSize = options.pageSize ?? DEFAULTS.pageSize;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 10_000) {
    throw new ConfigError(
      'pageSize',
      `Expected \`pageSize\` to be an integer from 1 to 10000, got ${describe(pageSize)}`,
    );
  }
  const closeTimeoutMs = durationOption(
    'closeTimeoutMs',
    options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
    0,
  );
  return {
    store: options.store ?? new MemoryScheduleStore(),
    pageSize,
    logger: options.logger ?? silentLogger,
    closeTimeoutMs,
  };
}

/** Why a tick was not fanned out. */
export type SkipReason = 'catch-up-none' | 'already-handled';

/** The scheduler's events, one payload object each. */
export interface SchedulerEventMap {
  'fanout:done': [FanOutResult];
  'fanout:skip': [{ scheduleId: string; tick: Date; batchId: string; reason: SkipReason }];
  'fanout:error': [{ scheduleId: string; tick: Date; batchId: string; error: FanOutError }];
}

/** A registered schedule as the scheduler reports it. */
export interface ScheduleInfo {
  id: string;
  cron: string;
  queue: string;
  /** The next tick the timer waits for, or null when the pattern has no more. */
  nextTick: Date | null;
}

interface Registered {
  options: ResolvedFanOutOptions;
  cron: Cron;
  nextTick: Date | null;
  timer: NodeJS.Timeout | undefined;
  // Ticks of one schedule run one after another.
  chain: Promise<unknown>;
}

// Timers longer than this re-check the clock first: setTimeout cannot wait more than
// ~24.8 days, and a long sleep should not drift across clock changes.
const MAX_SLEEP_MS = 60 * 60 * 1000;
// Waits before the second and third attempt of a failed fan-out.
const TICK_RETRY_DELAYS_MS = [1000, 5000];

/**
 * Fans jobs out to every active tenant on cron schedules. Constructed from a fleet (or any
 * `{ registry, enqueueBulk }`); `fleet.scheduler()` makes one.
 */
export class Scheduler extends EventEmitter<SchedulerEventMap> implements AsyncDisposable {
  readonly #target: FanOutTarget;
  readonly #options: ResolvedSchedulerOptions;
  readonly #schedules = new Map<string, Registered>();
  readonly #abort = new AbortController();
  // Aborted as soon as close() starts: cuts short the wait before a retry.
  readonly #stopping = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(target: FanOutTarget, options: SchedulerOptions = {}) {
    super();
    this.#target = target;
    this.#options = resolveSchedulerOptions(options);
  }

  /** The state store the scheduler records ticks in. */
  get store(): ScheduleStateStore {
    return this.#options.store;
  }

  /**
   * Registers a schedule and arms its timer. First applies the catch-up policy to ticks
   * missed since the last recorded one, and resolves once that is done. A schedule never
   * seen before records the most recent tick as its starting point, without running it.
   * Everything its ticks will enqueue is checked here, once: {@link ValidationError} names
   * the field (see `validateFanOut`).
   */
  async fanOut(options: FanOutOptions): Promise<ScheduleInfo> {
    if (this.#closing) throw new ClosedError('scheduler');
    const resolved = validateFanOut(options, this.#target.maxDataBytes ?? Number.POSITIVE_INFINITY);
    if (this.#schedules.has(resolved.id)) {
      throw new ValidationError(
        'id',
        `Expected a schedule id not yet registered, got ${describe(resolved.id)} twice`,
      );
    }
    const entry: Registered = {
      options: resolved,
      cron: makeCron(resolved),
      nextTick: null,
      timer: undefined,
      chain: Promise.resolve(),
    };
    this.#schedules.set(resolved.id, entry);
    // One reference instant for both: the catch-up covers ticks up to `now`, the timer
    // waits for the first one after it (at once if that has passed meanwhile).
    const now = new Date();
    try {
      await this.#enqueue(entry, () => this.#catchUp(entry, now));
    } catch (err) {
      // The store could not be read: leave nothing half-registered, so a retry can register.
      this.#schedules.delete(resolved.id);
      throw err;
    }
    this.#arm(entry, now);
    return this.#info(entry);
  }

  /**
   * Fans schedule `scheduleId` out for the tick at `at` now, whatever the clock says
   * (tests, manual reruns). Skips it when the store already has this tick or a later one.
   * A fan-out that fails rejects with {@link FanOutError}, the error that stopped it as `cause`.
   */
  async tick(scheduleId: string, at: Date): Promise<FanOutResult | null> {
    if (this.#closing) throw new ClosedError('scheduler');
    const entry = this.#schedules.get(scheduleId);
    if (!entry) {
      throw new ValidationError(
        'scheduleId',
        `Expected a registered schedule id, got ${describe(scheduleId)}`,
      );
    }
    // Past 2286 a tick's epoch milliseconds outgrow the 13 digits job ids leave room for.
    if (!(at instanceof Date) || !(at.getTime() >= 0 && at.getTime() < 1e13)) {
      throw new ValidationError(
        'at',
        `Expected \`at\` to be a Date from 1970 to 2286, got ${at instanceof Date ? String(at) : describe(at)}`,
      );
    }
    return this.#enqueue(entry, () => this.#runTick(entry, at));
  }

  /** The registered schedules and their next ticks. */
  schedules(): ScheduleInfo[] {
    return [...this.#schedules.values()].map((entry) => this.#info(entry));
  }

  /** Stops every timer and waits (up to `closeTimeoutMs`) for running fan-outs; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopping.abort();
      for (const entry of this.#schedules.values()) {
        clearTimeout(entry.timer);
        entry.cron.stop();
      }
      const running = Promise.allSettled([...this.#schedules.values()].map((entry) => entry.chain));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.#options.closeTimeoutMs);
      });
      const outcome = await Promise.race([running, deadline]);
      clearTimeout(timer);
      // Past the deadline, abort the fan-out between pages; its tick stays unrecorded,
      // so the next start catches it up (and re-enqueuing it is idempotent).
      if (outcome === 'timeout') this.#abort.abort(new ClosedError('scheduler'));
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #info(entry: Registered): ScheduleInfo {
    const { id, cron, queue } = entry.options;
    return { id, cron, queue, nextTick: entry.nextTick };
  }

  #enqueue<T>(entry: Registered, step: () => Promise<T>): Promise<T> {
    const run = entry.chain.then(step, step);
    entry.chain = run.catch(() => undefined);
    return run;
  }

  async #catchUp(entry: Registered, now: Date): Promise<void> {
    const { id, catchUp } = entry.options;
    const latest = entry.cron.previousRuns(1, now)[0];
    if (!latest) return;
    const last = await this.#options.store.lastTick(id);
    if (last === null) {
      // A schedule seen for the first time starts here: later downtime is measured from it.
      await this.#options.store.recordTick(id, latest);
      return;
    }
    if (last.getTime() >= latest.getTime()) return;
    if (catchUp === 'none') {
      await this.#options.store.recordTick(id, latest);
      this.emit('fanout:skip', {
        scheduleId: id,
        tick: latest,
        batchId: fanOutBatchId(id, latest),
        reason: 'catch-up-none',
      });
      this.#options.logger.info(
        { schedule: id, tick: latest.toISOString() },
        'missed tick skipped (catchUp: none)',
      );
      return;
    }
    this.#options.logger.info(
      { schedule: id, tick: latest.toISOString(), last: last.toISOString() },
      'catching up the latest missed tick',
    );
    await this.#runTick(entry, latest).catch(() => undefined);
  }

  async #runTick(entry: Registered, tick: Date): Promise<FanOutResult | null> {
    const { id } = entry.options;
    const batchId = fanOutBatchId(id, tick);
    try {
      const last = await this.#options.store.lastTick(id);
      if (last !== null && last.getTime() >= tick.getTime()) {
        this.#options.logger.info(
          { schedule: id, tick: tick.toISOString(), batchId },
          'fan-out skipped: another scheduler already handled this tick',
        );
        this.emit('fanout:skip', { scheduleId: id, tick, batchId, reason: 'already-handled' });
        return null;
      }
      const result = await fanOutTick(
        this.#target,
        id,
        entry.options,
        tick,
        this.#options.pageSize,
        this.#abort.signal,
      );
      await this.#options.store.recordTick(id, tick);
      const fields = { schedule: id, tick: tick.toISOString(), batchId };
      // Two schedulers can both pass the check above before either records the tick;
      // the one whose jobs were all there already did nothing, and says so.
      if (result.added === 0 && result.enqueued > 0)
        this.#options.logger.info(
          { ...fields, enqueued: 0 },
          'fan-out skipped: another scheduler already enqueued this tick',
        );
      else
        this.#options.logger.info(
          { ...fields, enqueued: result.added, pages: result.pages },
          'fan-out enqueued',
        );
      this.emit('fanout:done', result);
      return result;
    } catch (err) {
      // Whatever stopped it (the registry, the engine, the store, a driver error) is the
      // cause of one FleetError that says which schedule and tick failed.
      const error = err instanceof FanOutError ? err : new FanOutError(id, tick, err);
      this.#options.logger.error(
        { schedule: id, tick: tick.toISOString(), batchId, err: error },
        'fan-out failed',
      );
      this.emit('fanout:error', { scheduleId: id, tick, batchId, error });
      throw error;
    }
  }

  // A fan-out that failed (registry or engine unreachable) is tried again: re-enqueuing a
  // tick is idempotent. After the last attempt the tick stays unrecorded, so the next
  // start's catch-up can still run it.
  async #runTickWithRetries(entry: Registered, tick: Date): Promise<void> {
    for (let attempt = 0; attempt < TICK_RETRY_DELAYS_MS.length + 1; attempt++) {
      try {
        await this.#runTick(entry, tick);
        return;
      } catch {
        const delay = TICK_RETRY_DELAYS_MS[attempt];
        if (delay === undefined || this.#stopping.signal.aborted) return;
        await sleep(delay, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
        if (this.#stopping.signal.aborted) return;
      }
    }
  }

  // Waits for the next tick after `from`. A tick that comes due while the previous one is
  // still fanning out runs right after it; ticks left behind by a stall (a suspended
  // process) follow the catch-up policy instead of running one by one.
  #arm(entry: Registered, from: Date): void {
    if (this.#closing) return;
    const next = entry.cron.nextRun(from);
    entry.nextTick = next;
    if (!next) return;
    const wait = Math.max(0, Math.min(next.getTime() - Date.now(), MAX_SLEEP_MS));
    entry.timer = setTimeout(() => {
      if (this.#closing) return;
      if (Date.now() < next.getTime()) {
        this.#arm(entry, from);
        return;
      }
      void this.#enqueue(entry, async () => {
        await this.#runTickWithRetries(entry, next);
        const now = new Date();
        const following = entry.cron.nextRun(next);
        if (following && following.getTime() < now.getTime() - 1000) {
          await this.#catchUp(entry, now);
          this.#arm(entry, now);
        } else {
          this.#arm(entry, next);
        }
      });
    }, wait);
  }
}
