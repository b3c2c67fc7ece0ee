/**
 * Stopping a statement a connection was abandoned in, where the server needs another
 * session to do it (MySQL's `KILL QUERY`). That session is a connection like any other
 * to the server, so it is paid for from the budget: an idle connection of the same pool
 * (same server, same credentials, already counted) when there is one, else a slot that
 * is free, given back as soon as the statement ran. With neither, it looks again now and
 * then until one frees (another abandoned connection closing, say) or the statement ended
 * by itself; meanwhile the abandoned connection keeps its own slot until the server has
 * ended its session, so the server never sees more sessions than the budget either way.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ABANDON_WAIT_MS, type RawConnection } from '../drivers/driver.js';
import type { ConnectionBudget } from './budget.js';
import type { PooledConnection } from './types.js';

/** What a side cancel borrows from the pool of the abandoned connection. */
export interface SideCancelDeps {
  budget: ConnectionBudget;
  /** An idle connection of the pool, lent to the cancel (undefined when none). */
  borrowIdle(): PooledConnection | undefined;
  /** Gives the borrowed idle connection back to the pool. */
  giveBack(conn: PooledConnection): void;
  /** Opens a new connection to the pool's database (its slot already taken). */
  open(): Promise<RawConnection>;
}

/**
 * What to run before closing `raw`: the side cancel of its running statement when it has
 * one in flight and the server needs another session to stop it (Postgres' close cancels
 * by itself), else undefined.
 */
export function sideCancelFor(raw: RawConnection, deps: SideCancelDeps): (() => Promise<void>) | undefined {
  const statement = raw.inFlight > 0 ? raw.cancelStatement : undefined;
  return statement === undefined ? undefined : () => cancelOnSide(raw, statement, deps);
}

/** How often a side cancel with no session to run on looks for one again. */
const RETRY_MS = 25;

/** Runs `statement` (e.g. `KILL QUERY 42`) on a budgeted side session. Never rejects. */
async function cancelOnSide(raw: RawConnection, statement: string, deps: SideCancelDeps): Promise<void> {
  const deadline = Date.now() + ABANDON_WAIT_MS;
  for (;;) {
    if (raw.inFlight === 0 || Date.now() >= deadline) return;
    if (await tryCancel(statement, deps)) return;
    await delay(RETRY_MS);
  }
}

// One attempt; false when no session could be had.
async function tryCancel(statement: string, deps: SideCancelDeps): Promise<boolean> {
  const idle = deps.borrowIdle();
  if (idle) {
    try {
      await idle.raw.query(statement);
    } catch {
      // The statement had ended already, or the idle connection died: nothing to stop.
    } finally {
      deps.giveBack(idle);
    }
    return true;
  }
  if (!deps.budget.takeFreeNow()) return false;
  let side: RawConnection | undefined;
  try {
    side = await deps.open();
    await side.query(statement);
  } catch {
    // Unreachable server or statement already over: the close's bounded wait ends it.
  } finally {
    await side?.close();
    deps.budget.free();
  }
  return true;
}
