/** `tenant-fleet config`: the configuration every other command would run with. */
import { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { type GlobalFlags, globalConfigFlags, printJson } from '../context.js';

/** The `config` command. */
export function configCommand(): Command {
  return new Command('config')
    .description(
      'print the configuration in effect (defaults, file, FLEET_* variables and flags merged) as JSON, passwords redacted',
    )
    .action(async (_flags: unknown, command: Command) => {
      const flags = command.optsWithGlobals<GlobalFlags>();
      const { config, file } = await loadConfig({
        configPath: flags.config,
        flags: globalConfigFlags(flags),
      });
      // Each string redacted on its own: the line stays valid JSON whatever the URLs hold.
      printJson({ file, config });
    });
}
