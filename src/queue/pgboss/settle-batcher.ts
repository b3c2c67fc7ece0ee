/**
 * Coalesces one queue's completions and claims into `fleet_settle` calls
 * (settle-function.ts), so a busy worker pays one round trip and one commit per batch of
 * jobs rather than per job. Nothing waits to fill a batch: a call goes out at the next
 * turn of the event loop when fewer than {@link MAX_IN_FLIGHT} statements are in flight,
 * and the calls that arrive meanwhile ride the next one. An idle worker's lone completion
 * therefore costs what it cost alone; fifty slots finishing at once share a statement.
 *
 * Each caller's promise settles with its own statement: a completion resolves once its
 * batch committed (so at-least-once holds: a completion lost with its connection leaves
 * the job active, and its lock lapses), a claim resolves to its job or null. Claims of one
 * tenant in one batch are merged (`n` jobs for `n` callers) and handed out in the
 * partition's order. A statement that failed fails every caller in it; one chosen as a
 * deadlock victim (SQLSTATE 40P01: it took nothing, it is whole or not at all) is retried.
 */
import type pg from 'pg';
import { Coalescer } from '../coalescer.js';
import type { ClaimedRow } from './rows.js';

/** Statements of one queue in flight at once: one being sent while the next one fills. */
const MAX_IN_FLIGHT = 2;
/** A deadlock victim is sent again this many times before its callers see the error. */
const DEADLOCK_RETRIES = 3;

/** A claimed row, with the tenant it belongs to. */
interface SettledRow extends ClaimedRow {
  tenant: string;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

interface Completion extends Waiter<void> {
  uuid: string;
  token: string;
  output: string;
}

interface Claim {
  count: number;
  takers: Waiter<ClaimedRow | null>[];
}

/** What one statement carries. */
class Batch {
  readonly completions: Completion[] = [];
  readonly claims = new Map<string, Claim>();
  /**
   * The lock of the batch's claims. Callers asking for different locks in one batch get
   * the longest: a lock held longer than asked only delays redelivery after a crash.
   */
  lockMs = 0;

  get empty(): boolean {
    return this.completions.length === 0 && this.claims.size === 0;
  }

  fail(error: unknown): void {
    for (const completion of this.completions) completion.reject(error);
    for (const claim of this.claims.values()) for (const taker of claim.takers) taker.reject(error);
  }
}

/** Where the batcher sends its statements, and what it needs to build them. */
export interface SettleBatcherOptions {
  pool: pg.Pool;
  /** The (checked) schema name. */
  schema: string;
  queue: string;
  /** Finished rows a partition keeps (`keepCompleted`). */
  keepCompleted: number;
}

/** The completions and claims of one queue, coalesced. */
export class SettleBatcher {
  readonly #options: SettleBatcherOptions;
  readonly #sql: string;
  readonly #batches: Coalescer<Batch>;

  constructor(options: SettleBatcherOptions) {
    this.#options = options;
    this.#sql = `SELECT * FROM ${options.schema}.fleet_settle($1, $2, $3, $4, $5, $6, $7, $8)`;
    this.#batches = new Coalescer({
      maxInFlight: MAX_IN_FLIGHT,
      create: () => new Batch(),
      isEmpty: (batch) => batch.empty,
      send: (batch) => this.#settle(batch),
    });
  }

  /** Completes an active job (`output` is its result as JSON); resolves once committed. */
  complete(uuid: string, token: string, output: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#batches.add((batch) => batch.completions.push({ uuid, token, output, resolve, reject }));
    });
  }

  /** Claims the next ready job of `tenant`'s partition, locked for `lockMs`; null when none. */
  claim(tenant: string, lockMs: number): Promise<ClaimedRow | null> {
    return new Promise<ClaimedRow | null>((resolve, reject) => {
      this.#batches.add((batch) => {
        let claim = batch.claims.get(tenant);
        if (claim === undefined) {
          claim = { count: 0, takers: [] };
          batch.claims.set(tenant, claim);
        }
        claim.count += 1;
        claim.takers.push({ resolve, reject });
        batch.lockMs = Math.max(batch.lockMs, lockMs);
      });
    });
  }

  /**
   * Resolves once nothing is pending or in flight (the engine's close waits for it before
   * ending the pool, so a completion already asked for is not thrown away).
   */
  drain(): Promise<void> {
    return this.#batches.drain();
  }

  /**
   * Sends a batch and settles its callers. A statement refused for its data (SQLSTATE
   * class 22: say a result holding a NUL character, which JSON allows and jsonb does not)
   * is sent again one completion at a time, so only the offending caller fails rather
   * than every job that finished beside it.
   */
  async #settle(batch: Batch): Promise<void> {
    let rows: SettledRow[];
    try {
      rows = await this.#send(batch);
    } catch (error) {
      const dataError = /^22/.test(String((error as { code?: unknown } | null)?.code ?? ''));
      if (!dataError || batch.completions.length <= 1) {
        batch.fail(error);
        return;
      }
      const claims = new Batch();
      for (const [tenant, claim] of batch.claims) claims.claims.set(tenant, claim);
      claims.lockMs = batch.lockMs;
      for (const completion of batch.completions) {
        const alone = new Batch();
        alone.completions.push(completion);
        await this.#settle(alone);
      }
      if (!claims.empty) await this.#settle(claims);
      return;
    }
    for (const completion of batch.completions) completion.resolve();
    this.#handOut(batch, rows);
  }

  async #send(batch: Batch): Promise<SettledRow[]> {
    const { completions, claims } = batch;
    const tenants = [...claims.keys()];
    const values = [
      this.#options.queue,
      completions.map((completion) => completion.uuid),
      completions.map((completion) => completion.token),
      completions.map((completion) => completion.output),
      this.#options.keepCompleted,
      tenants,
      tenants.map((tenant) => claims.get(tenant)!.count),
      batch.lockMs,
    ];
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.#options.pool.query<SettledRow>(this.#sql, values)).rows;
      } catch (error) {
        const deadlock = (error as { code?: unknown } | null)?.code === '40P01';
        if (!deadlock || attempt >= DEADLOCK_RETRIES) throw error;
      }
    }
  }

  /** Gives each claim's takers its tenant's rows in order; takers left over get null. */
  #handOut(batch: Batch, rows: readonly SettledRow[]): void {
    const byTenant = new Map<string, SettledRow[]>();
    for (const row of rows) {
      const list = byTenant.get(row.tenant);
      if (list === undefined) byTenant.set(row.tenant, [row]);
      else list.push(row);
    }
    for (const [tenant, claim] of batch.claims) {
      const list = byTenant.get(tenant) ?? [];
      for (const [i, taker] of claim.takers.entries()) taker.resolve(list[i] ?? null);
    }
  }
}
