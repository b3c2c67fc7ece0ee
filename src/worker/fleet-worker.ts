import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActiveJob, QueueEngine } from '../queue/engine.js';
import { ClosedError, ConfigError, describe } from '../reporting/errors.js';
import { type Logger, silentLogger } from '../reporting/logger.js';
import type { Org } from '../tenancy/org.js';
import { durationOption } from '../validate.js';
import { ConnectionBorrower } from './connection-borrower.js';
import { FairPicker } from './fair-picker.js';
import { createJobContext, type JobHandler, toError } from './job-context.js';
import { ReadyRefresher } from './ready-refresher.js';
import { type AbandonReason, RunningJobs, signalOf } from './running-jobs.js';
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
  readonly #running: RunningJobs;
  readonly #stop = new AbortController();
  #wakers: Array<() => void> = [];
  #loops: Promise<void>[] = [];
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
      stalledIntervalMs: this.options.stalledIntervalMs,
      orgRefreshMs: this.options.orgRefreshMs,
      onRecovered: (moved) => this.#logger.info({ moved }, 'put back jobs whose lock expired'),
      onReady: () => this.#wake(),
      hasIdleSlot: () => this.#wakers.length > 0,
      onError: (error, during) => this.#error(error, during),
    });
    this.#running = new RunningJobs({
      engine: deps.engine,
      lockDurationMs: this.options.lockDurationMs,
      onAbandoned: (entry, reason) => this.#abandoned(entry, reason),
      onError: (error) => this.#error(error, 'extendLocks'),
    });
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
    this.#running.start();
    this.#loops.push(this.#refresher.run());
    for (let i = 0; i < this.options.concurrency; i++) this.#loops.push(this.#slotLoop());
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
    this.#borrower?.stop();
    for (const wake of this.#wakers.splice(0)) wake();
    const deadline = new AbortController();
    const timedOut = await Promise.race([
      Promise.allSettled(this.#loops).then(() => false),
      sleep(timeoutMs, true, { signal: deadline.signal }).catch(() => false),
    ]);
    deadline.abort();
    if (timedOut) {
      this.#gaveUp = true;
      this.#running.abandonAll('shutdown');
    }
    await this.#running.stop().catch((error: unknown) => this.#error(error, 'close'));
    // Lifts still being written, for as long as the close may take (Redis may be down).
    await Promise.race([this.#tenants.settled(), sleep(timeoutMs, undefined, { ref: false })]);
    this.#logger.debug({ abandoned: timedOut }, 'worker closed');
    this.emit('closed');
  }

  /** A job given up on (RunningJobs aborted it and released its connection): say so. */
  #abandoned({ job }: RunningJob, reason: AbandonReason): void {
    if (reason === 'lock-lost')
      this.#logger.warn({ jobId: job.id, tenant: job.tenant }, 'lost the lock of a running job');
    this.emit('job:aborted', { job, reason });
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
      const { workerId, lockDurationMs } = this.options;
      let turn = await this.#claim(slug, 'fetch', () =>
        this.#engine.fetch(this.queue, slug, workerId, lockDurationMs),
      );
      // A turn that ends by handing the slot on starts the next tenant's turn at once.
      while (turn !== null) turn = await this.#serve(turn);
    }
  }

  /**
   * Starts a turn with a tenant the picker named: borrows a connection to its data, then
   * `take`s its first job (a fetch, or the previous turn's completion taking it). Null
   * when there is none to run: the picker has been told why, and the pick is finished.
   */
  async #claim(slug: string, during: string, take: () => Promise<ActiveJob | null>): Promise<Turn | null> {
    const org = this.#tenants.org(slug);
    if (org === undefined) {
      this.#picker.finish(slug);
      return null;
    }
    const db = this.#borrower === undefined ? undefined : await this.#borrower.borrow(org);
    if (db === null) {
      // Blocked: the round skips the tenant until a connection comes back.
      this.#picker.finish(slug);
      return null;
    }
    // Stamped before fetching: news of a job enqueued during the fetch must survive a null.
    const asOf = this.#picker.stamp();
    let job: ActiveJob | null;
    try {
      job = await take();
    } catch (error) {
      this.#borrower?.giveBack(db);
      this.#picker.finish(slug);
      this.#error(error, during);
      await sleep(ERROR_BACKOFF_MS, undefined, { signal: this.#stop.signal }).catch(() => {});
      return null;
    }
    if (job === null || job.tenant !== slug) {
      this.#borrower?.giveBack(db);
      // Never run another tenant's job with this tenant's connection (a faulty engine): its lock lapses.
      if (job === null) this.#fetchedNothing(org, asOf);
      else this.#error(new Error(`Expected a job of tenant ${slug}, got one of ${job.tenant}`), during);
      this.#picker.finish(slug);
      return null;
    }
    // The tenant had a job, so it may have more: undo a markEmpty another slot asked for earlier.
    this.#picker.markReady(slug, asOf);
    return { org, db, served: 0, first: job as ActiveJob<Data>, takenAsOf: asOf, handedOn: undefined };
  }

  /** Runs a turn; resolves to the next tenant's turn when this one handed the slot on. */
  async #serve(turn: Turn): Promise<Turn | null> {
    // A job taken after close() gave up waiting is not run: its lock expires and it runs again.
    if (this.#gaveUp) {
      this.#borrower?.giveBack(turn.db);
      this.#picker.finish(turn.org.slug);
      return null;
    }
    // Each run gives its connection back, then hands the turn on (with a fresh one) or ends it.
    for (let next: ActiveJob | null = turn.first; next !== null; )
      next = await this.#run(next as ActiveJob<Data>, turn);
    // Taken off the turn, so that no chain of turns forms (see Turn.handedOn).
    const { handedOn } = turn;
    turn.handedOn = undefined;
    if (handedOn !== undefined) return handedOn;
    this.#picker.finish(turn.org.slug);
    this.#wake();
    return null;
  }

  /**
   * Ends a turn whose last job succeeded: the picker names the next tenant now, and the
   * completion takes that tenant's first job in the same engine call (one round trip
   * where a plain worker would spend two). Resolves to that tenant's turn, if any. A job
   * that was its partition's last one (`lastReady`) leaves the tenant marked empty, as its
   * take left the engine's ready index.
   */
  async #handOn(entry: RunningJob, result: Result | undefined, started: number, ended: Turn) {
    const job = entry.job as ActiveJob<Data>;
    if (job.lastReady === true) this.#picker.markEmpty(job.tenant, ended.takenAsOf);
    this.#picker.finish(job.tenant);
    const slug = this.#picker.pick();
    if (slug !== null && this.#picker.hasEligible) this.#wakeOne();
    let completing = false;
    const complete = async (tenant?: string): Promise<ActiveJob | null> => {
      completing = true;
      this.#running.settle(entry);
      const { workerId, lockDurationMs } = this.options;
      const fetchNext = tenant === undefined ? undefined : { workerId, lockDurationMs, tenant };
      const next = await this.#engine.complete(job, result, fetchNext && { fetchNext });
      this.#completed(job, result, started);
      return next;
    };
    const turn = slug === null ? null : await this.#claim(slug, 'complete', () => complete(slug));
    // The next tenant could not start (no org, no connection): complete on its own.
    if (!completing) await complete().catch((error: unknown) => this.#error(error, 'complete'));
    this.#wake();
    return turn;
  }

  #completed(job: ActiveJob<Data>, result: Result | undefined, started: number): void {
    if (this.listenerCount('job:completed') > 0)
      this.emit('job:completed', { job, result, durationMs: performance.now() - started });
  }

  /** A fetch found nothing (or the tenant is at its fleet-wide cap). */
  #fetchedNothing(org: Org, asOf: number): void {
    this.#picker.markEmpty(org.slug, asOf);
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
    const entry = this.#running.add(job, db);
    const started = performance.now();
    if (this.listenerCount('job:active') > 0) this.emit('job:active', { job, tenant: org });
    let result: Result | undefined;
    let failure: Error | undefined;
    try {
      const ctx = createJobContext(job, org, db, () => signalOf(entry), this.#logger);
      result = await this.#handler(job, ctx);
    } catch (thrown) {
      failure = toError(thrown);
    }
    // Abandoned (close timed out, or the lock was lost): the job is someone else's now.
    if (entry.abandoned) return null;
    // The turn goes on: take the tenant's next job with the completion.
    // The partition's last job waiting ends the turn: asking for the next would find none.
    let again =
      failure === undefined && !this.#closing && job.lastReady !== true && this.#tenants.continueTurn(turn);
    // Back to the pool after every job, and the next job borrows again: only the pool's
    // checkout ends a transaction the handler left open, resets the session and sets
    // search_path (handed on, the next job could write into another tenant's schema). The
    // lock stays renewed until the completion goes out (a borrow may open a connection).
    this.#borrower?.giveBack(db, failure);
    entry.db = undefined;
    turn.db = again ? await this.#borrower?.borrowAgain(turn.org) : undefined;
    // Nothing to lend without waiting: the turn ends, the next pick borrows as usual.
    if (this.#borrower !== undefined && turn.db === undefined) again = false;
    if (failure === undefined && !again && !this.#closing) {
      turn.handedOn = await this.#handOn(entry, result, started, turn);
      return null;
    }
    const asOf = this.#picker.stamp();
    let next: ActiveJob | null = null;
    let settled = false;
    this.#running.settle(entry);
    try {
      if (failure === undefined) {
        const fetchNext = { workerId: this.options.workerId, lockDurationMs: this.options.lockDurationMs };
        next = await this.#engine.complete(job, result, again ? { fetchNext } : undefined);
        settled = true;
        this.#completed(job, result, started);
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
      this.#picker.markReady(job.tenant, asOf);
      turn.takenAsOf = asOf;
      return next;
    }
    this.#borrower?.giveBack(turn.db);
    // Only a completion that went through, asking for more, says the partition had nothing more.
    if (again && next === null && settled) this.#fetchedNothing(org, asOf);
    return null;
  }

  /** Wakes an idle slot if a tenant can be picked; that slot wakes the next (see #slotLoop). */
  #wake(): void {
    if (this.#picker.hasEligible) this.#wakeOne();
  }

  #wakeOne(): void {
    this.#wakers.shift()?.();
  }

  #error(thrown: unknown, during: string): void {
    const error = toError(thrown);
    this.#errors.report(error, during);
    // An `error` event with no listener would throw: only emit to someone listening.
    if (this.listenerCount('error') > 0) this.emit('error', { error, during });
  }
}
