#!/usr/bin/env node
/**
 * The `tenant-fleet` command. Exit codes: 0 done (or stopped by SIGINT/SIGTERM after a
 * graceful shutdown), 1 the command failed, 2 a usage or configuration error (a bad
 * flag, a bad config value, bad input), with a message naming it.
 */
import { CommanderError } from 'commander';
import { ConfigError, ValidationError } from '../reporting/errors.js';
import { redactUrl } from '../reporting/redact.js';
import { buildProgram } from './program.js';

/** Exit code of a usage or configuration error. */
export const EXIT_USAGE = 2;

async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has written its message already.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : EXIT_USAGE;
    }
    const error = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`error: ${redactUrl(error.message)}\n`);
    if (process.env.FLEET_DEBUG) process.stderr.write(`${redactUrl(error.stack ?? '')}\n`);
    return err instanceof ConfigError || err instanceof ValidationError ? EXIT_USAGE : 1;
  }
}

// A reader that has read enough closes the pipe (`tenant-fleet orgs list | head`): not a
// crash with a stack trace. The command goes on to its end and its own exit code (a
// worker's shutdown, a failed tenant's 1), writing no more to stdout; logs go to stderr.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

// A command may set a failing exit code of its own (migrate with a failed tenant).
const code = (await main(process.argv)) || Number(process.exitCode ?? 0);
process.exitCode = code;
// Whatever a library left open (a timer, a socket) must not keep a finished command alive.
setTimeout(() => process.exit(code), 2000).unref();
