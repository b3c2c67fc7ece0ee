/**
 * `defineHandlers`: typed per queue (a type-level check), checked at run time, and read
 * back by the worker command from a module's default export.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineHandlers, handlersOf } from '../../src/worker/define-handlers.js';
import type { JobContext } from '../../src/worker/job-context.js';

describe('defineHandlers', () => {
  it('types each handler by its queue', () => {
    const handlers = defineHandlers<{ reports: { month: string }; emails: { to: string } }>({
      reports: async (job, ctx) => {
        expectTypeOf(job.data).toEqualTypeOf<{ month: string }>();
        expectTypeOf(ctx).toEqualTypeOf<JobContext>();
        return job.data.month;
      },
      emails: async (job) => {
        expectTypeOf(job.data.to).toBeString();
      },
    });
    expectTypeOf(handlers).toHaveProperty('reports');
    expect(Object.keys(handlers)).toEqual(['reports', 'emails']);
    expect(Object.isFrozen(handlers)).toBe(true);
  });

  it('rejects a handler that is not a function, naming its queue', () => {
    expect(() => defineHandlers({ reports: 'nope' as never })).toThrow(/queue `reports`.*function/);
  });

  it('is read back from a default export, nested or not', () => {
    const reports = async () => undefined;
    expect(Object.keys(handlersOf({ default: defineHandlers({ reports }) }, 'h.js'))).toEqual(['reports']);
    expect(Object.keys(handlersOf({ default: { default: { reports } } }, 'h.ts'))).toEqual(['reports']);
    expect(() => handlersOf({ default: {} }, 'empty.js')).toThrow(/at least one handler/);
  });
});
