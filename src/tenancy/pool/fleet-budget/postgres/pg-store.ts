/**
 * The lease store in Postgres, for a fleet without Redis: the plpgsql functions of
 * lease-sql.ts, one round trip per step (a server's takes one at a time), and NOTIFY for
 * the messages. Like the Redis store, it remembers the epoch of the tables it last saw
 * and passes it along, so tables dropped and recreated under a running fleet fence new
 * leases until the holders have re-registered theirs.
 */
import type pg from 'pg';
import { NoAnswerError } from '../bounded.js';
import type {
  LeaseStore,
  LeaseStoreListener,
  RenewAnswer,
  RenewRequest,
  TakeAnswer,
} from '../lease-store.js';
import { ident } from './lease-sql.js';
import { PgLink } from './pg-link.js';
import { SerialSteps } from './serial-steps.js';

/** The fleet budget's leases in Postgres (a URL, or a pg.Pool left open on close). */
export class PgLeaseStore implements LeaseStore {
  readonly name = 'Postgres';
  readonly #link: PgLink;
  readonly #schema: string;
  readonly #channel: string;
  readonly #takes = new SerialSteps((error) => error instanceof NoAnswerError);
  // The epoch of the lease tables this process last saw ('' before its first call).
  #epoch = '';

  constructor(postgres: string | pg.Pool, prefix: string, timeoutMs: number, listener: LeaseStoreListener) {
    this.#schema = ident(prefix);
    this.#channel = prefix;
    this.#link = new PgLink(postgres, prefix, timeoutMs, (payload) => {
      let message: { released?: unknown; want?: unknown; from?: unknown };
      try {
        message = JSON.parse(payload) as typeof message;
      } catch {
        return;
      }
      if (typeof message.released === 'string') listener.released(message.released);
      else if (typeof message.want === 'string' && typeof message.from === 'string') {
        listener.wanted(message.want, message.from);
      }
    });
  }

  // One take per server at a time from this process (see serial-steps.ts).
  take(server: string, limit: number, id: string, ticket: string, ttlMs: number): Promise<TakeAnswer> {
    return this.#takes.run(server, async () => {
      const [row] = await this.#link.query<{ o_taken: boolean; o_live: number; o_epoch: string }>(
        `SELECT o_taken, o_live, o_epoch FROM ${this.#schema}.take($1, $2, $3, $4, $5, $6)`,
        [server, limit, id, ticket, ttlMs, this.#epoch],
      );
      this.#epoch = row!.o_epoch;
      return { taken: row!.o_taken, live: row!.o_live };
    });
  }

  async release(server: string, id: string): Promise<void> {
    await this.#link.query(`SELECT ${this.#schema}.release($1, $2)`, [server, id]);
  }

  async withdraw(server: string, ticket: string): Promise<void> {
    await this.#link.query(`SELECT ${this.#schema}.withdraw($1, $2)`, [server, ticket]);
  }

  async renew(ttlMs: number, servers: readonly RenewRequest[]): Promise<RenewAnswer[]> {
    const [row] = await this.#link.query<{
      answer: { epoch: string; servers: Record<string, RenewAnswer> };
    }>(`SELECT ${this.#schema}.renew($1, $2, $3::jsonb) AS answer`, [
      ttlMs,
      this.#epoch,
      JSON.stringify(servers),
    ]);
    const { epoch, servers: answers } = row!.answer;
    this.#epoch = epoch;
    return servers.map(({ server }) => answers[server] ?? { live: 0, lost: [] });
  }

  async want(server: string, from: string): Promise<void> {
    await this.#link.query('SELECT pg_notify($1, $2)', [
      this.#channel,
      JSON.stringify({ want: server, from }),
    ]);
  }

  close(): Promise<void> {
    return this.#link.close();
  }
}
