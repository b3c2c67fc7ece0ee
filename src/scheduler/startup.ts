/**
 * Startup jobs: work a worker process does once when it boots, either before it fetches
 * any job (`'blocking'`) or beside it (`'background'`). Pool prewarm is the built-in one:
 * it opens each active tenant's minimum connections so the first jobs do not pay for
 * connecting, and its report is logged and kept for the dashboard.
 *
 * A startup job that fails is logged and recorded; it never stops the worker from starting.
 */
import { EventEmitter } from 'node:events';
import { ConfigError, describe } from '../reporting/errors.js';
import { type Logger, silentLogger } from '../reporting/logger.js';

/** When startup jobs run relative to the worker's first fetch. */
export type StartupMode = 'blocking' | 'background';

/** One piece of work to do at boot. */
export interface StartupJob<Result = unknown> {
  /** Shown in logs and results, e.g. `prewarm`. */
  readonly name: string;
  run(context: { signal: AbortSignal }): Promise<Result>;
}

/** How one startup job ended. */
export type StartupResult =
  | { name: string; ok: true; result: unknown; durationMs: number }
  | { name: string; ok: false; error: Error; durationMs: number };

/** The numbers of a pool prewarm (TenantPools' `PrewarmReport` fits). */
export interface PrewarmSummary {
  totalActive: number;
  warmed: number;
  failed: number;
  skippedCap: number;
}

/** Events of a {@link StartupRun}, one payload object each. */
export interface StartupEventMap {
  'startup:done': [StartupResult];
  'prewarm:report': [PrewarmSummary];
}

/** Options of {@link runStartupJobs}. */
export interface StartupOptions {
  /** @default 'blocking' */
  mode?: StartupMode;
  /** @default no logging */
  logger?: Pick<Logger, 'info' | 'error'>;
  /** Aborts the job that is running and skips the rest (the worker is shutting down). */
  signal?: AbortSignal;
}

/** {@link StartupOptions} with the defaults filled in. */
export interface ResolvedStartupOptions {
  mode: StartupMode;
  logger: Pick<Logger, 'info' | 'error'>;
  signal: AbortSignal | undefined;
}

const DEFAULTS = { mode: 'blocking' } satisfies Partial<ResolvedStartupOptions>;

/** Checks {@link StartupOptions} and fills in the defaults. */
export function resolveStartupOptions(options: StartupOptions = {}): ResolvedStartupOptions {
  const mode = options.mode ?? DEFAULTS.mode;
  if (mode !== 'blocking' && mode !== 'background') {
    throw new ConfigError(
      'startup',
      `Expected \`startup\` to be 'blocking' or 'background', got ${describe(mode)}`,
    );
  }
  return { mode, logger: options.logger ?? silentLogger, signal: options.signal };
}

const PREWARM = 'prewarm';

/** The built-in startup job: `pools.prewarm()`. */
export function prewarmJob<Report extends PrewarmSummary>(pools: {
  prewarm(): Promise<Report>;
}): StartupJob<Report> {
  return { name: PREWARM, run: () => pools.prewarm() };
}

/** Startup jobs under way or done; `done` settles when the last one has. */
export class StartupRun extends EventEmitter<StartupEventMap> {
  readonly #results: StartupResult[] = [];
  #prewarm: PrewarmSummary | null = null;
  /** Resolves with every job's result once all have run; never rejects. */
  readonly done: Promise<StartupResult[]>;

  constructor(jobs: readonly StartupJob[], options: ResolvedStartupOptions) {
    super();
    this.done = this.#runAll(jobs, options);
  }

  /** Results so far, in the order the jobs ran. */
  results(): readonly StartupResult[] {
    return this.#results;
  }

  /** The last prewarm report, once the prewarm job has run; kept for the dashboard. */
  get prewarmReport(): PrewarmSummary | null {
    return this.#prewarm;
  }

  async #runAll(jobs: readonly StartupJob[], options: ResolvedStartupOptions): Promise<StartupResult[]> {
    // Let a caller that gets this object attach listeners before the first event.
    await Promise.resolve();
    const signal = options.signal ?? new AbortController().signal;
    for (const job of jobs) {
      if (signal.aborted) break;
      const started = performance.now();
      let result: StartupResult;
      try {
        const value = await job.run({ signal });
        result = {
          name: job.name,
          ok: true,
          result: value,
          durationMs: Math.round(performance.now() - started),
        };
        if (job.name === PREWARM && isPrewarmSummary(value)) {
          this.#prewarm = value;
          options.logger.info(
            { startup: job.name, report: value, durationMs: result.durationMs },
            'pools prewarmed',
          );
          this.emit('prewarm:report', value);
        } else {
          options.logger.info({ startup: job.name, durationMs: result.durationMs }, 'startup job done');
        }
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        result = { name: job.name, ok: false, error, durationMs: Math.round(performance.now() - started) };
        options.logger.error({ startup: job.name, err: error }, 'startup job failed');
      }
      this.#results.push(result);
      this.emit('startup:done', result);
    }
    return this.#results;
  }
}

/**
 * Starts the startup jobs one after the other. In `'blocking'` mode it resolves once they
 * have all run, so the caller starts fetching only then; in `'background'` mode it
 * resolves at once and the jobs run beside the worker (await `run.done` to wait).
 */
export async function runStartupJobs(
  jobs: readonly StartupJob[],
  options: StartupOptions = {},
): Promise<StartupRun> {
  const resolved = resolveStartupOptions(options);
  const run = new StartupRun(jobs, resolved);
  if (resolved.mode === 'blocking') await run.done;
  return run;
}

function isPrewarmSummary(value: unknown): value is PrewarmSummary {
  if (typeof value !== 'object' || value === null) return false;
  const report = value as Record<string, unknown>;
  return ['totalActive', 'warmed', 'failed', 'skippedCap'].every((key) => typeof report[key] === 'number');
}
