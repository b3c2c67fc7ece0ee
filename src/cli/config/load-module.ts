import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, describe } from '../../reporting/errors.js';

/**
 * Imports a user file (a config or a handlers module) by path, relative to the working
 * directory. `.ts` files go through tsx, which is only a dev dependency: without it the
 * error says to compile the file or install tsx. A `.ts` or `.tsx` file loads as an ES
 * module whatever the project's `type` (see {@link tsAsEsmHook}); `.cts` stays CommonJS.
 */
export async function loadUserModule(path: string, option: string): Promise<Record<string, unknown>> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new ConfigError(option, `Expected \`${option}\` to name an existing file, got ${describe(path)}`);
  }
  try {
    if (/\.[cm]?tsx?$/.test(absolute)) {
      const tsImport = await typescriptImporter(option);
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

/** The tsx namespace of the files this process loads (tsx passes it on to their imports). */
const NAMESPACE = 'tenant-fleet-user';

/**
 * A module resolve hook (a data URL, so it loads the same from the sources and from the
 * package): a `.ts` or `.tsx` file outside node_modules that this module loads, or that
 * one of those imports, loads as an ES module where tsx would load it as CommonJS (in a
 * CommonJS project, npm init's default type). Compiled to CommonJS, its `import … from
 * 'tenant-fleet'` would become a `require` that tsx answers with a second, CommonJS-
 * compiled copy of tenant-fleet, which fails to load. Its URL is the file's own, with
 * the namespace as query (so its imports are recognised, and `import.meta.url` names
 * the file), not tsx's CommonJS form (`…ts%3Fnamespace=…?tsx-commonjs-virtual-query`).
 * Other modules of the process are left alone.
 */
function tsAsEsmHook(loader: string): string {
  const source = `
const NAMESPACE = ${JSON.stringify(`tsx-namespace=${NAMESPACE}`)};
const LOADER = ${JSON.stringify(loader)};
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  // CommonJS as tsx or Node sees it, or not decided yet (Node 24 without type stripping).
  if (resolved.format != null && resolved.format !== 'commonjs' && resolved.format !== 'commonjs-typescript')
    return resolved;
  const parent = context.parentURL ?? '';
  if (!resolved.url.includes(NAMESPACE) && parent !== LOADER && !parent.includes(NAMESPACE)) return resolved;
  const url = new URL(resolved.url);
  const path = url.pathname.split('%3F')[0];
  if (url.protocol !== 'file:' || !/\\.tsx?$/.test(path) || path.includes('/node_modules/')) return resolved;
  return { ...resolved, url: 'file://' + path + '?' + NAMESPACE, format: 'module-typescript' };
}
`;
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

type ScopedImport = (specifier: string, parent: string) => Promise<unknown>;
let typescript: Promise<ScopedImport> | undefined;

/**
 * tsx's import, registered once per process in {@link NAMESPACE}, with
 * {@link tsAsEsmHook} after it (the hook registered last runs first, and so sees tsx's
 * answer). Nothing is kept after a failure: without tsx, each call says so.
 */
async function typescriptImporter(option: string): Promise<ScopedImport> {
  try {
    typescript ??= registerTypescript();
    return await typescript;
  } catch (err) {
    typescript = undefined;
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new ConfigError(
      option,
      `Expected tsx to be installed to load a .ts file for \`${option}\`, got none (compile it to .js or run npm install tsx)`,
      { cause: err },
    );
  }
}

async function registerTypescript(): Promise<ScopedImport> {
  const tsx = (await import('tsx/esm/api')) as {
    register(options: { namespace: string }): { import: ScopedImport };
  };
  const scoped = tsx.register({ namespace: NAMESPACE });
  register(tsAsEsmHook(import.meta.url));
  return scoped.import;
}

/**
 * The default export of a loaded module, else the module itself. A CommonJS module (a
 * `.cts` file, or one compiled from ESM) has its `export default` one level deeper.
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
