/**
 * What only the in-memory engine has: bounded bodies of finished jobs and its option checks.
 */
import { describe, expect, it, vi } from 'vitest';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { ConfigError } from '../../src/reporting/errors.js';

describe('MemoryEngine', () => {
  it('keeps counts of every finished job but only the newest bodies', async () => {
    await using engine = new MemoryEngine({ keepCompleted: 2, keepFailed: 1 });
    const ids = await engine.enqueueBulk(
      'q',
      Array.from({ length: 7 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    for (let i = 0; i < 5; i++) await engine.complete((await engine.fetch('q', 'acme', 'w', 1000))!, i);
    for (let i = 0; i < 2; i++)
      await engine.fail((await engine.fetch('q', 'acme', 'w', 1000))!, new Error(`e${i}`));
    expect(await engine.counts('q', 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 5,
      failed: 2,
    });
    const kept = await Promise.all(ids.map((id) => engine.getJob('q', 'acme', id)));
    expect(kept.map((job) => job?.state ?? null)).toEqual([
      null,
      null,
      null,
      'completed',
      'completed',
      null,
      'failed',
    ]);
    expect(kept[6]?.error?.message).toBe('e1');
  });

  it('waits for a job delayed past what a timer holds without a timer that fires at once', async () => {
    await using engine = new MemoryEngine();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      // 30 days: a valid delay, longer than a Node timer's 2^31 - 1 ms (about 24.8 days).
      await engine.enqueue('q', { tenant: 'acme', name: 'n', data: 1, delayMs: 30 * 86_400_000 });
      const delays = spy.mock.calls.map((call) => call[1] ?? 0);
      expect(delays.length).toBeGreaterThan(0);
      for (const delay of delays) expect(delay).toBeLessThanOrEqual(2_147_483_647);
    } finally {
      spy.mockRestore();
    }
    expect(await engine.counts('q', 'acme')).toMatchObject({ delayed: 1, waiting: 0 });
  });

  it('rejects bad options with a ConfigError naming the option', () => {
    expect(() => new MemoryEngine({ keepCompleted: -1 })).toThrow(ConfigError);
    expect(() => new MemoryEngine({ maxDataBytes: 0 })).toThrow(
      expect.objectContaining({ option: 'maxDataBytes' }),
    );
    // Sizes are bounded: every kept job stays in this process's heap.
    for (const [option, value] of [
      ['keepCompleted', 1_000_001],
      ['keepFailed', 1_000_001],
      ['maxStalledCount', 1_001],
      ['maxDataBytes', 512 * 1024 * 1024 + 1],
    ] as const)
      expect(() => new MemoryEngine({ [option]: value })).toThrow(expect.objectContaining({ option }));
  });
});
