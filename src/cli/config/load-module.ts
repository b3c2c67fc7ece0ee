import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, describe } from '../../reporting/errors.js';

/**
 * Imports a user file (a config or a handlers module) by path, relative to the working
 * directory. `.ts` files go through tsx, which is only a dev dependency: without it the
 * error says to compile the file or install tsx.
 */
export async function loadUserModule(path: string, option: string): Promise<Record<string, unknown>> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new ConfigError(option, `Expected \`${option}\` to name an existing file, got ${describe(path)}`);
  }
  try {
    if (/\.[cm]?ts$/.test(absolute)) {
      const { tsImport } = await importTsx(option);
      return (await tsImport(pathToFileURL(absolute).href, import.meta.url)) as Record<string, unknown>;
    }
    return (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      option,
      `Expected \`${option}\` (${describe(path)}) to load, got ${(err as Error).name}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

async function importTsx(
  option: string,
): Promise<{ tsImport: (specifier: string, parent: string) => Promise<unknown> }> {
  try {
    return (await import('tsx/esm/api')) as {
      tsImport: (specifier: string, parent: string) => Promise<unknown>;
    };
  } catch (err) {
    throw new ConfigError(
      option,
      `Expected tsx to be installed to load a .ts file for \`${option}\`, got none (compile it to .js or run npm install tsx)`,
      { cause: err },
    );
  }
}

/**
 * The default export of a loaded module, else the module itself. A `.ts` file outside an
 * ESM package loads as CommonJS, whose `export default` arrives one level deeper.
 */
export function defaultExport(module: Record<string, unknown>): unknown {
  let value: unknown = module.default ?? module;
  for (let depth = 0; depth < 2; depth++) {
    if (typeof value !== 'object' || value === null || !('default' in value)) break;
    const keys = Object.keys(value).filter((key) => key !== '__esModule' && key !== 'module.exports');
    if (keys.length !== 1) break;
    value = (value as { default: unknown }).default;
  }
  return value;
}
