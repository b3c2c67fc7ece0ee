import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClosedError, ConfigError, describe } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ActiveJob, QueueEngine } from '../queue/engine.js';
import type { Org } from '../tenancy/org.js';
import { durationOption } from '../validate.js';
import { ConnectionBorrower } from './connection-borrower.js';
import { FairPicker } from './fair-picker.js';
import { createJobContext, type JobHandler, toError } from './job-context.js';
import { jobKey, LockKeeper } from './lock-keeper.js';
import { ReadyRefresher } from './ready-refresher.js';
import { TenantDirectory } from './tenant-directory.js';
import { isUnrecoverable } from './unrecoverable-error.js';
import { ErrorLog, logFailure } from './worker-log.js';
import {
  type FleetWorkerOptions,
  type ResolvedFleetWorkerOptions,
  resolveFleetWorkerOptions,
} from './worker-options.js';
import type { CloseOptions, FleetWorkerDeps, FleetWorkerEventMap, RunningJob, Turn } from './worker-types.js';

// How long the worker rests after an engine call failed, so a Redis outage is not a busy loop.
const ERROR_BACKOFF_MS = 250;
// A tenant with a fleet-wide cap that fetched nothing is looked at again this soon.
const CAP_RETRY_MS = 50;

/**
 * Pulls the jobs of one logical queue fairly across tenants: while a slot is free it
 * asks the {@link FairPicker} for a tenant, borrows a connection to that tenant's data
 * *first* (without waiting: a pool that cannot lend makes the tenant skipped for now),
 * then fetches one job of that tenant, runs the handler and completes or fails the job.
 * A connection is never held while a job waits, and a job never waits on a connection.
 *
 * Each slot is its own async loop; the picker is synchronous, so slots interleave
 * deterministically on the event loop. One more loop keeps the picker's view of ready
 * tenants fresh from the engine.
 */
export class FleetWorker<Data = unknown, Result = unknown> extends EventEmitter<FleetWorkerEventMap> {
  /** The logical queue this worker pulls from. */
  readonly queue: string;
  readonly options: Readonly<ResolvedFleetWorkerOptions>;

  readonly #engine: QueueEngine;
  /** Set when `borrowConnection` is on. */
  readonly #borrower: ConnectionBorrower | undefined;
  readonly #logger: Logger;
  readonly #errors: ErrorLog;
  readonly #handler: JobHandler<Data, Result>;
  readonly #picker = new FairPicker();
  readonly #tenants: TenantDirectory;
  /** Keyed by {@link jobKey}: a caller's jobId is unique only within its tenant's partition. */
  readonly #running = new Map<string, RunningJob>();
  readonly #locks: LockKeeper;
  readonly #stop = new AbortController();
  #wakers: Array<() => void> = [];
  #loops: Promise<void>[] = [];
  #timers: NodeJS.Timeout[] = [];
  readonly #refresher: ReadyRefresher;
  #started = false;
  #closing = false;
  /** close() stopped waiting: a job fetched after that is not run (its lock is left to expire). */
  #gaveUp = false;
  #closed: Promise<void> | undefined;

  constructor(
    deps: FleetWorkerDeps,
    queue: string,
    handler: JobHandler<Data, Result>,
    options: FleetWorkerOptions = {},
  ) {
    super();
    if (typeof handler !== 'function') {
      throw new ConfigError('handler', `Expected the job handler to be a function, got ${describe(handler)}`);
    }
    this.options = Object.freeze(resolveFleetWorkerOptions(options));
    this.queue = queue;
    this.#engine = deps.engine;
    this.#borrower = this.options.borrowConnection
      ? new ConnectionBorrower({
          pools: deps.pools,
          picker: this.#picker,
          poolRetryMs: this.options.poolRetryMs,
          onUnblocked: () => this.#wake(),
          onError: (error, during) => this.#error(error, during),
        })
      : undefined;
    this.#handler = handler;
    this.#logger = (deps.logger ?? silentLogger).child({ queue, workerId: this.options.workerId });
    this.#errors = new ErrorLog(this.#logger);
    this.#tenants = new TenantDirectory({
      engine: deps.engine,
      orgs: deps.orgs,
      picker: this.#picker,
      queue,
      perTenantConcurrency: this.options.perTenantConcurrency,
      jobsPerTurn: this.options.jobsPerTurn,
      orgRefreshMs: this.options.orgRefreshMs,
      onSkip: (tenant, reason) => this.emit('tenant:skipped', { tenant, reason }),
      onError: (error, during) => this.#error(error, during),
    });
    this.#refresher = new ReadyRefresher({
      engine: deps.engine,
      queue,
      tenants: this.#tenants,
      pollIntervalMs: this.options.pollIntervalMs,
      onReady: () => this.#wake(),
      hasIdleSlot: () => this.#wakers.length > 0,
      onError: (error, during) => this.#error(error, during),
    });
    this.#locks = new LockKeeper(
      deps.engine,
      this.options.lockDurationMs,
      (jobs) => this.#lockLost(jobs),
      (error) => this.#error(error, 'extendLocks'),
    );
    if (this.options.autorun) this.run();
  }

  /** This worker's identity in locks and logs. */
  get id(): string {
    return this.options.workerId;
  }

  /** Jobs running now. */
  get runningCount(): number {
    return this.#running.size;
  }

  /** Whether `close()` has been called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Starts pulling jobs (done by the constructor unless `autorun: false`). */
  run(): void {
    if (this.#closing) throw new ClosedError('FleetWorker');
    if (this.#started) return;
    this.#started = true;
    this.#locks.start();
    this.#loops.push(this.#refresher.run());
    for (let i = 0; i < this.options.concurrency; i++) this.#loops.push(this.#slotLoop());
    this.#every(this.options.stalledIntervalMs, () => this.#recoverStalled());
    this.#every(this.options.orgRefreshMs, () => this.#tenants.refresh().then(() => this.#wake()));
    void this.#recoverStalled();
  }

  /**
   * Stops fetching, lets running jobs finish for up to `timeoutMs`, then aborts the
   * rest through their `ctx.signal` and leaves them to the engine: their lock is not
   * renewed, so it expires and the job runs again (attempts are not used up). Every
   * borrowed connection is given back. Idempotent: later calls get the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const timeoutMs = durationOption('timeoutMs', options?.timeoutMs ?? this.options.shutdownTimeoutMs, 0);
    this.#closed ??= this.#close(timeoutMs);
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#stop.abort();
    this.#refresher.stop();
    for (const timer of this.#timers) clearInterval(timer);
    this.#borrower?.stop();
    for (const wake of this.#wakers.splice(0)) wake();
    const loops = Promise.allSettled(this.#loops);
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      loops.then(() => false),
      new Promise<boolean>((resolve) => {
        deadline = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(deadline);
    if (timedOut) {
      this.#gaveUp = true;
      for (const entry of this.#running.values()) this.#abandon(entry, 'shutdown');
    }
    try {
      await this.#locks.stop();
    } catch (error) {
      this.#error(error, 'close');
    }
    this.#logger.debug({ abandoned: timedOut }, 'worker closed');
    this.emit('closed');
  }

  /** Gives up on a running job: abort its handler, give its connection back, leave its lock to expire. */
  #abandon(entry: RunningJob, reason: 'shutdown' | 'lock-lost'): void {
    if (entry.abandoned) return;
    entry.abandoned = true;
    this.#locks.delete(entry.job);
    this.#running.delete(jobKey(entry.job));
    entry.controller.abort(new Error(`Job ${entry.job.id} aborted: ${reason}`));
    // The handler may still hold the connection: destroy it rather than lend it on.
    entry.db?.release(new Error(`job aborted (${reason})`));
    entry.db = undefined;
    this.emit('job:aborted', { job: entry.job, reason });
  }

  #lockLost(jobs: readonly ActiveJob[]): void {
    for (const job of jobs) {
      const entry = this.#running.get(jobKey(job));
      if (entry === undefined || entry.job !== job) continue;
      this.#logger.warn({ jobId: job.id, tenant: job.tenant }, 'lost the lock of a running job');
      this.#abandon(entry, 'lock-lost');
    }
  }

  async #slotLoop(): Promise<void> {
    while (!this.#closing) {
      const slug = this.#picker.pick();
      if (slug === null) {
        await new Promise<void>((resolve) => this.#wakers.push(resolve));
        continue;
      }
      // Chain the wake-up: another idle slot takes the next eligible tenant.
      if (this.#picker.hasEligible) this.#wakeOne();
      await this.#serve(slug);
    }
  }

  /**
   * One pick, a turn of up to `jobsPerTurn` jobs of one tenant: borrow, fetch, run,
   * settle. Within the turn (and while the round would hand the slot the same tenant
   * again) each job is completed and the next one fetched in one engine call; each job
   * borrows its own connection, fresh from the pool's checkout. Never throws.
   */
  async #serve(slug: string): Promise<void> {
    const org = this.#tenants.org(slug);
    if (org === undefined) {
      this.#picker.finish(slug);
      return;
    }
    const db = this.#borrower === undefined ? undefined : await this.#borrower.borrow(org);
    if (db === null) {
      // Blocked: the round skips the tenant until a connection comes back.
      this.#picker.finish(slug);
      return;
    }
    // Read before fetching: a readiness signal during the fetch must survive a null.
    const epoch = this.#picker.readyEpoch(slug);
    let job: ActiveJob | null;
    try {
      job = await this.#engine.fetch(this.queue, slug, this.options.workerId, this.options.lockDurationMs);
    } catch (error) {
      this.#borrower?.giveBack(db);
      this.#picker.finish(slug);
      this.#error(error, 'fetch');
      await sleep(ERROR_BACKOFF_MS, undefined, { signal: this.#stop.signal }).catch(() => {});
      return;
    }
    if (job === null) {
      this.#borrower?.giveBack(db);
      this.#fetchedNothing(org, epoch);
      this.#picker.finish(slug);
      return;
    }
    // The tenant had a job, so it may have more: undo a markEmpty another slot raced in.
    this.#picker.markReady(slug);
    // Each run gives its connection back, then hands the turn on (with a fresh one) or ends it.
    const turn: Turn = { org, db, served: 0 };
    for (let next: ActiveJob | null = job; next !== null; )
      next = await this.#run(next as ActiveJob<Data>, turn);
    this.#picker.finish(slug);
    this.#wake();
  }

  /** A fetch found nothing (or the tenant is at its fleet-wide cap). */
  #fetchedNothing(org: Org, epoch: number): void {
    this.#picker.markEmpty(org.slug, epoch);
    // Null may mean "at its fleet-wide cap" rather than empty; nobody signals when another
    // process frees a place, so ask the engine again soon rather than at the next poll.
    if (org.maxConcurrency !== null) this.#refresher.soon(CAP_RETRY_MS);
  }

  /**
   * Runs one job of the turn and settles it, giving its connection back. Resolves to the
   * tenant's next job when the turn goes on (the pick passes to that job, with a connection
   * borrowed afresh into `turn.db`), else to null with no connection held.
   */
  async #run(job: ActiveJob<Data>, turn: Turn): Promise<ActiveJob | null> {
    const { org, db } = turn;
    turn.served += 1;
    const entry: RunningJob = { job, controller: new AbortController(), db, abandoned: false };
    this.#running.set(jobKey(job), entry);
    this.#locks.add(job);
    const started = performance.now();
    if (this.listenerCount('job:active') > 0) this.emit('job:active', { job, tenant: org });
    let result: Result | undefined;
    let failure: Error | undefined;
    try {
      const ctx = createJobContext(job, org, db, entry.controller.signal, this.#logger);
      result = await this.#handler(job, ctx);
    } catch (thrown) {
      failure = toError(thrown);
    }
    // Abandoned (close timed out, or the lock was lost): the job is someone else's now.
    if (entry.abandoned) return null;
    this.#locks.delete(job);
    this.#running.delete(jobKey(job));
    entry.db = undefined;
    // The turn goes on: take the tenant's next job with the completion.
    let again = failure === undefined && !this.#closing && this.#continueTurn(turn);
    // Back to the pool after every job, and the next job borrows again: only the pool's
    // checkout ends a transaction the handler left open, resets the session and sets
    // search_path (handed on, the next job could write into another tenant's schema).
    this.#borrower?.giveBack(db, failure);
    turn.db = again ? await this.#borrower?.borrowAgain(turn.org) : undefined;
    // Nothing to lend without waiting: the turn ends, the next pick borrows as usual.
    if (this.#borrower !== undefined && turn.db === undefined) again = false;
    const epoch = this.#picker.readyEpoch(job.tenant);
    let next: ActiveJob | null = null;
    let settled = false;
    try {
      if (failure === undefined) {
        const fetchNext = { workerId: this.options.workerId, lockDurationMs: this.options.lockDurationMs };
        next = await this.#engine.complete(job, result, again ? { fetchNext } : undefined);
        settled = true;
        if (this.listenerCount('job:completed') > 0)
          this.emit('job:completed', { job, result, durationMs: performance.now() - started });
      } else {
        const unrecoverable = isUnrecoverable(failure);
        const outcome = await this.#engine.fail(job, failure, { unrecoverable });
        logFailure(this.#logger, job, failure, outcome);
        if (outcome === 'retrying') this.emit('job:retrying', { job, error: failure });
        else this.emit('job:failed', { job, error: failure, unrecoverable });
      }
    } catch (error) {
      this.#error(error, failure === undefined ? 'complete' : 'fail');
    }
    // A job fetched after close() gave up waiting is not run: its lock expires and it runs again.
    if (again && next !== null && !this.#gaveUp) {
      this.#picker.markReady(job.tenant);
      return next;
    }
    this.#borrower?.giveBack(turn.db);
    // Only a completion that went through, asking for more, says the partition had nothing more.
    if (again && next === null && settled) this.#fetchedNothing(org, epoch);
    return null;
  }

  /**
   * Whether the slot serves the turn's tenant once more: while the turn has jobs left,
   * or, once it is used up, when the round would hand the slot the same tenant again
   * (then a new turn starts). The org is read again, so a deactivation or a new cap ends
   * the turn. The turn also ends early when a tenant waits for a connection, so that the
   * turn's connection goes back now rather than after the whole turn.
   */
  #continueTurn(turn: Turn): boolean {
    const org = this.#tenants.org(turn.org.slug);
    if (org === undefined) return false;
    turn.org = org;
    if (turn.db !== undefined && this.#picker.hasBlocked) return false;
    if (turn.served < this.#tenants.turnLength(org)) return true;
    // A capped tenant's places go round the fleet: never two turns in a row in one slot.
    if (org.maxConcurrency !== null || !this.#picker.repick(org.slug)) return false;
    turn.served = 0;
    return true;
  }

  async #recoverStalled(): Promise<void> {
    if (this.#closing) return;
    try {
      const moved = await this.#engine.recoverStalled(this.queue);
      if (moved > 0) this.#logger.info({ moved }, 'put back jobs whose lock expired');
    } catch (error) {
      this.#error(error, 'recoverStalled');
    }
  }

  /** Wakes an idle slot if a tenant can be picked; that slot wakes the next (see #slotLoop). */
  #wake(): void {
    if (this.#picker.hasEligible) this.#wakeOne();
  }

  #wakeOne(): void {
    this.#wakers.shift()?.();
  }

  #every(ms: number, fn: () => unknown): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  #error(thrown: unknown, during: string): void {
    const error = toError(thrown);
    this.#errors.report(error, during);
    // An `error` event with no listener would throw: only emit to someone listening.
    if (this.listenerCount('error') > 0) this.emit('error', { error, during });
  }
}
