/**
 * Remembers, from a scheduler's events only, each schedule's last fan-out in this
 * process: the tick, its batch id and how many jobs it enqueued. A tick another scheduler
 * already fanned out (`already-handled`) counts too: its batch exists all the same. The
 * dashboard reads the batch's progress from the engine.
 */
import type { FanOutResult } from '../scheduler/fan-out.js';
import type { Scheduler, SchedulerEventMap } from '../scheduler/scheduler.js';
import type { ScheduleSnapshot } from './snapshot.js';

type Last = Pick<ScheduleSnapshot, 'lastTick' | 'batchId' | 'enqueued'>;

/** The schedules of the schedulers watched, with their last fan-out. */
export class ScheduleRecorder {
  readonly #schedulers = new Set<Pick<Scheduler, 'schedules'>>();
  readonly #last = new Map<string, Last>();
  readonly #stops: (() => void)[] = [];

  /** Records `scheduler`'s fan-outs; returns a function that stops. */
  watch(scheduler: Pick<Scheduler, 'schedules' | 'on' | 'off'>): () => void {
    const done = (result: FanOutResult) =>
      this.#record(result.scheduleId, result.tick, result.batchId, result.enqueued);
    const skip = (event: SchedulerEventMap['fanout:skip'][0]) => {
      if (event.reason === 'already-handled') this.#record(event.scheduleId, event.tick, event.batchId, null);
    };
    scheduler.on('fanout:done', done);
    scheduler.on('fanout:skip', skip);
    this.#schedulers.add(scheduler);
    const stop = () => {
      scheduler.off('fanout:done', done);
      scheduler.off('fanout:skip', skip);
      this.#schedulers.delete(scheduler);
    };
    this.#stops.push(stop);
    return stop;
  }

  #record(scheduleId: string, tick: Date, batchId: string, enqueued: number | null): void {
    const previous = this.#last.get(scheduleId)?.lastTick;
    if (typeof previous === 'number' && previous > tick.getTime()) return;
    this.#last.set(scheduleId, { lastTick: tick.getTime(), batchId, enqueued });
  }

  /** Every schedule of the watched schedulers, with its last fan-out (null before one). */
  schedules(): ScheduleSnapshot[] {
    return [...this.#schedulers].flatMap((scheduler) =>
      scheduler.schedules().map((s) => ({
        id: s.id,
        queue: s.queue,
        cron: s.cron,
        nextTick: s.nextTick?.getTime() ?? null,
        ...(this.#last.get(s.id) ?? { lastTick: null, batchId: null, enqueued: null }),
      })),
    );
  }

  /** Stops listening to every scheduler. */
  close(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }
}
