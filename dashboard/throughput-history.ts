/**
 * Throughput per queue over the last 15 minutes, from the processes' cumulative
 * counters: each sample adds, per process, what it completed since the previous sample.
 * A process that appears counts from zero (its counters start with it); one that
 * disappears simply stops adding, so the sum never goes backwards.
 */
import type { ProcessSnapshot } from '../src/metrics/snapshot.js';

/** One point: completed and failed jobs per second over the interval ending at `at`. */
export interface ThroughputPoint {
  at: number;
  completed: number;
  failed: number;
}

/** How far back the history reaches. */
export const HISTORY_MS = 15 * 60_000;

/** The throughput history of every queue. */
export class ThroughputHistory {
  readonly #last = new Map<string, { completed: number; failed: number }>();
  readonly #points = new Map<string, ThroughputPoint[]>();
  #lastAt = 0;

  /** Adds a sample from the live snapshots. */
  sample(live: readonly ProcessSnapshot[], now = Date.now()): void {
    const delta = new Map<string, { completed: number; failed: number }>();
    const seen = new Set<string>();
    for (const s of live)
      for (const [queue, q] of Object.entries(s.queues)) {
        const key = `${s.id}\u0000${queue}`;
        seen.add(key);
        // A process first seen now counts from zero only if it started since the last sample.
        const before =
          this.#last.get(key) ??
          (s.startedAt > this.#lastAt
            ? { completed: 0, failed: 0 }
            : { completed: q.completed, failed: q.failed });
        const d = delta.get(queue) ?? { completed: 0, failed: 0 };
        d.completed += Math.max(0, q.completed - before.completed);
        d.failed += Math.max(0, q.failed - before.failed);
        delta.set(queue, d);
        this.#last.set(key, { completed: q.completed, failed: q.failed });
      }
    for (const key of this.#last.keys()) if (!seen.has(key)) this.#last.delete(key);
    if (this.#lastAt > 0) {
      const seconds = Math.max(0.001, (now - this.#lastAt) / 1000);
      for (const [queue, d] of delta) {
        const points = this.#points.get(queue) ?? [];
        points.push({ at: now, completed: d.completed / seconds, failed: d.failed / seconds });
        while (points.length > 0 && points[0]!.at < now - HISTORY_MS) points.shift();
        this.#points.set(queue, points);
      }
    }
    this.#lastAt = now;
  }

  /** The points of every queue, oldest first. */
  points(): Record<string, ThroughputPoint[]> {
    return Object.fromEntries([...this.#points].map(([queue, points]) => [queue, [...points]]));
  }
}
