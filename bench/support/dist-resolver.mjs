/**
 * A Node resolve hook for the benchmarks: the package's own modules (`src/…`,
 * `dashboard/…`) load from `dist/`, as `tsc` builds them and users run them, not from
 * the TypeScript sources through tsx. (tsx's transform keeps function names by wrapping
 * every closure in a `__name` call, which costs a `defineProperty` per closure created:
 * measured on the TenantPools hit path, it made the sources look up to 2× slower than the
 * built package.) The bench files themselves still run through tsx.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (!resolved.url.startsWith('file:')) return resolved;
  const path = fileURLToPath(resolved.url);
  for (const folder of ['src/', 'dashboard/']) {
    if (path.startsWith(root + folder) && path.endsWith('.ts') && !path.endsWith('.d.ts')) {
      const built = `${root}dist/${path.slice(root.length, -'.ts'.length)}.js`;
      return { ...resolved, url: pathToFileURL(built).href, format: 'module', shortCircuit: true };
    }
  }
  return resolved;
}
