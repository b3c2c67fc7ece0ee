/**
 * Handler files for `tenant-fleet worker --handlers ./handlers.js`:
 *
 * ```ts
 * import { defineHandlers } from 'tenant-fleet';
 * export default defineHandlers<{ reports: { month: string } }>({
 *   reports: async (job, ctx) => {
 *     await ctx.db!.query('insert into reports (month) values ($1)', [job.data.month]);
 *   },
 * });
 * ```
 */

import { defaultExport } from '../cli/config/load-module.js';
import { ConfigError, describe } from '../reporting/errors.js';
import type { JobHandler } from './job-context.js';

/** One handler per queue name; `Queues` maps each queue to its jobs' `data` type. */
export type Handlers<Queues extends Record<string, unknown> = Record<string, unknown>> = {
  [Queue in keyof Queues & string]: JobHandler<Queues[Queue]>;
};

/**
 * Declares the handlers of a handlers file, one per queue, typed by `Queues`. Checks
 * that each one is a function; the worker command reads the file's default export.
 */
export function defineHandlers<Queues extends Record<string, unknown> = Record<string, unknown>>(
  handlers: Handlers<Queues>,
): Handlers<Queues> {
  if (typeof handlers !== 'object' || handlers === null || Array.isArray(handlers)) {
    throw new ConfigError(
      'handlers',
      `Expected an object of handlers keyed by queue name, got ${describe(handlers)}`,
    );
  }
  for (const [queue, handler] of Object.entries(handlers)) {
    if (typeof handler !== 'function') {
      throw new ConfigError(
        'handlers',
        `Expected the handler of queue \`${queue}\` to be a function, got ${describe(handler)}`,
      );
    }
  }
  return Object.freeze({ ...handlers });
}

/** Reads a loaded handlers module: its default export (or the module itself) as queue → handler. */
export function handlersOf(module: Record<string, unknown>, path: string): Record<string, JobHandler> {
  const value = defaultExport(module) as Record<string, unknown>;
  if (typeof value !== 'object' || value === null) {
    throw new ConfigError(
      'handlers',
      `Expected ${path} to export default defineHandlers({...}), got ${describe(value)}`,
    );
  }
  const handlers: Record<string, JobHandler> = {};
  for (const [queue, handler] of Object.entries(value)) {
    if (typeof handler === 'function') handlers[queue] = handler as JobHandler;
  }
  if (Object.keys(handlers).length === 0) {
    throw new ConfigError('handlers', `Expected ${path} to export at least one handler, got none`);
  }
  return handlers;
}
