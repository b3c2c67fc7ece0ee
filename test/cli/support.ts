/**
 * Runs the BUILT command (`node dist/src/cli/main.js`, as `npm test` builds it) as a
 * child process, collecting its output. The waits are bounds against a hang, never
 * assertions about speed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBuilt } from '../support/built.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** Throws a clear error when the build is missing. */
export function requireBuiltCli(): void {
  requireBuilt(CLI, 'built CLI');
}

/** A running CLI process and what it printed so far. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null if killed by a signal). */
  exit: Promise<number | null>;
}

/** Environment for a child: no FLEET_* from the parent, plus `env`. */
export function childEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('FLEET_')) clean[key] = value;
  return { ...clean, ...env };
}

/** Starts the CLI with `args` in `cwd` (`cli`: another copy of main.js, e.g. an installed one). */
export function startCli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string | undefined>; cli?: string } = {},
): CliProcess {
  if (!options.cli) requireBuiltCli();
  const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** Runs the CLI to completion. */
export async function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = startCli(args, options);
  const code = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Polls `check` until true; the bound only keeps a broken process from hanging the suite. */
