/**
 * `waitForReady` on Postgres: one LISTEN connection per engine, opened by the first
 * wait, on the schema's channel; every enqueue, retry and finish under a cap NOTIFYs
 * with the queue's name in the same transaction, so a waiter wakes only once the job
 * is committed and visible. Jobs that become due by time (a delay, a backoff) send no
 * notification: a waiter sleeps until the queue's next due job at the latest.
 */
import pg from 'pg';
import { getOrCreate } from '../get-or-create.js';

/** Connects a client of its own (not the pool's) that LISTENs on `channel`. */
export async function listenClient(
  database: string,
  applicationName: string,
  channel: string,
): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: database, application_name: applicationName });
  client.on('error', () => {}); // reported by the listener once it owns the client
  await client.connect();
  await client.query(`LISTEN ${channel}`);
  return client;
}

/** Wakes `waitForReady` callers per queue from NOTIFY messages. */
export class WakeListener {
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #open: () => Promise<pg.Client>;
  readonly #onError: (error: Error) => void;
  #client: Promise<pg.Client> | null = null;
  #connected: pg.Client | null = null;
  #closed = false;

  /** `open` connects a client that already LISTENs on the channel. */
  constructor(open: () => Promise<pg.Client>, onError: (error: Error) => void) {
    this.#open = open;
    this.#onError = onError;
  }

  /**
   * Resolves on a notification for `queue`, after `dueInMs()` or `timeoutMs`, whichever
   * is first, or at once when `signal` aborts. `dueInMs` is asked once the LISTEN holds,
   * so a job that falls due meanwhile is not slept through; when this wait opened the
   * LISTEN, it also counts jobs ready already (their NOTIFY may have come before).
   * `dueInMs` gets how long ago the wait began: a job that fell due since then, after the
   * caller's read of the ready tenants perhaps, wakes it at once.
   */
  async wait(
    queue: string,
    timeoutMs: number,
    dueInMs: (includeReady: boolean, sinceMs: number) => Promise<number | null>,
    signal?: AbortSignal,
  ): Promise<void> {
    const since = Date.now();
    if (signal?.aborted) return;
    // A waiter that came before the LISTEN holds may have missed a notification.
    const unheard = this.#connected === null;
    const waiters = getOrCreate(this.#waiters, queue, () => new Set<() => void>());
    let timer: NodeJS.Timeout | undefined;
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        waiters.delete(wake);
        resolve();
      };
    });
    waiters.add(wake);
    signal?.addEventListener('abort', wake, { once: true });
    timer = setTimeout(wake, Math.max(0, timeoutMs));
    try {
      await this.#listening();
      const due = await dueInMs(unheard, Date.now() - since);
      if (due !== null && due < timeoutMs && waiters.has(wake)) {
        clearTimeout(timer);
        timer = setTimeout(wake, Math.max(0, due));
      }
    } catch (error) {
      // No LISTEN: poll instead, at most a second apart, until the connection is back.
      this.#onError(error as Error);
      if (waiters.has(wake)) {
        clearTimeout(timer);
        timer = setTimeout(wake, Math.min(timeoutMs, 1000));
      }
    }
    return woken;
  }

  /** Releases every waiter and closes the LISTEN connection; idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeAll();
    const client = this.#client;
    this.#client = null;
    if (client) await client.then((c) => c.end()).catch(() => {});
  }

  #listening(): Promise<pg.Client> {
    this.#client ??= this.#connect();
    return this.#client;
  }

  async #connect(): Promise<pg.Client> {
    try {
      const client = await this.#open();
      client.on('notification', (message) => {
        const waiters = this.#waiters.get(message.payload ?? '');
        if (waiters) for (const wake of [...waiters]) wake();
      });
      client.on('error', (error) => {
        this.#onError(error);
        this.#drop(client);
      });
      client.on('end', () => this.#drop(client));
      if (this.#closed) await client.end().catch(() => {});
      else this.#connected = client;
      return client;
    } catch (error) {
      this.#client = null;
      throw error;
    }
  }

  /** A lost connection may have dropped notifications: every waiter looks again. */
  #drop(client: pg.Client): void {
    if (this.#connected !== client) return;
    this.#connected = null;
    this.#client = null;
    client.end().catch(() => {});
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const waiters of this.#waiters.values()) for (const wake of [...waiters]) wake();
  }
}
