/**
 * Where the scheduler remembers the last tick it handled for each schedule, so that a
 * scheduler coming back after downtime can tell which ticks it missed (catch-up), and a
 * scheduler that arrives late at a tick another one already fanned out can skip it.
 *
 * Stores only ever move a schedule's last tick forward: two schedulers writing at once
 * can never move it back.
 */

/** The last-tick memory of the scheduler; implementations for memory, Redis and SQL. */
export interface ScheduleStateStore {
  /** The last tick handled (fanned out or deliberately skipped) for `scheduleId`, or null. */
  lastTick(scheduleId: string): Promise<Date | null>;
  /** Records `tick` as handled unless a later tick is already recorded. */
  recordTick(scheduleId: string, tick: Date): Promise<void>;
  /** Releases what the store holds; idempotent. */
  close(): Promise<void>;
}

/** A store in this process's memory: for tests and single-process fleets (memory engine). */
export class MemoryScheduleStore implements ScheduleStateStore {
  readonly #ticks = new Map<string, number>();

  async lastTick(scheduleId: string): Promise<Date | null> {
    const ms = this.#ticks.get(scheduleId);
    return ms === undefined ? null : new Date(ms);
  }

  async recordTick(scheduleId: string, tick: Date): Promise<void> {
    const current = this.#ticks.get(scheduleId);
    if (current === undefined || current < tick.getTime()) this.#ticks.set(scheduleId, tick.getTime());
  }

  async close(): Promise<void> {}
}
