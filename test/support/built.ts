import { existsSync } from 'node:fs';

/** Throws, naming the fix, when a file `npm run build` makes is missing. */
export function requireBuilt(file: string, what = 'built package file'): void {
  if (!existsSync(file)) {
    throw new Error(
      `Expected the ${what} ${file}, got no such file: run \`npm run build\` first (\`npm test\` does)`,
    );
  }
}
