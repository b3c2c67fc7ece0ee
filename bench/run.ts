/**
 * `npm run bench -- <name> [<name> …]`: builds the package, then runs bench/<name>.ts
 * against the built modules in dist/; each prints one JSON document. With no name, lists
 * the benchmarks.
 */
import { readdirSync } from 'node:fs';
import { register } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Every file beside this one is a benchmark; their shared plumbing is in support/.
const available = readdirSync(here)
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
  .map((file) => file.replace(/\.ts$/, ''));

const names = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
if (names.length === 0) {
  console.error(`usage: npm run bench -- <${available.join('|')}> …`);
  process.exit(2);
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`Expected a benchmark name among ${available.join(', ')}, got ${JSON.stringify(name)}`);
    process.exit(2);
  }
}
// The package's modules load from dist/ (built by `npm run bench`): see support/dist-resolver.mjs.
register('./support/dist-resolver.mjs', import.meta.url);
for (const name of names) {
  const module = (await import(pathToFileURL(`${here}/${name}.ts`).href)) as { main(): Promise<unknown> };
  const result = await module.main();
  console.log(JSON.stringify({ benchmark: name, ...(result as object) }, null, 2));
}
process.exit(0);
