/**
 * How the CLI loads a user's TypeScript file through tsx (handlers, config): a `.ts`
 * file and the `.ts` files it imports load as ES modules in a CommonJS project too (npm
 * init's default), with TypeScript-only syntax, and `import.meta.url` naming the file;
 * a `.cts` file stays CommonJS. The packed package's test runs README's handlers.ts in
 * a CommonJS project with `import … from 'tenant-fleet'` (test/package.test.ts).
 */
import { mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultExport, loadUserModule } from '../../../src/cli/config/load-module.js';
import { tempDir } from '../../support/services.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A project folder of its own, with `package.json` and the files given. */
function project(packageJson: object, files: Record<string, string>): string {
  const dir = realpathSync(tempDir('tenant-fleet-load-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify(packageJson));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const HANDLERS = `import { fileURLToPath } from 'node:url';
import { where, Mood } from './lib/where.ts';
export const here = fileURLToPath(import.meta.url);
export { where };
export default { hello: async (name: string): Promise<string> => \`\${Mood.Happy} \${name}\` };
`;
const WHERE = `import { fileURLToPath } from 'node:url';
export enum Mood { Happy = 'happy' }
export const where: string = fileURLToPath(import.meta.url);
`;

describe('loading a TypeScript file through tsx', () => {
  for (const [kind, packageJson] of [
    ['a CommonJS project', { name: 'app', private: true }],
    ['an ES module project', { name: 'app', private: true, type: 'module' }],
  ] as const) {
    it(`loads a .ts file and its .ts imports as ES modules in ${kind}`, async () => {
      const dir = project(packageJson, { 'handlers.ts': HANDLERS, 'lib/where.ts': WHERE });
      const module = await loadUserModule(join(dir, 'handlers.ts'), 'handlers');
      // An ES module's default export, not CommonJS's `{ default: { default } }`.
      const handlers = module.default as { hello(name: string): Promise<string> };
      expect(await handlers.hello('acme')).toBe('happy acme');
      expect(module.here).toBe(join(dir, 'handlers.ts'));
      expect(module.where).toBe(join(dir, 'lib', 'where.ts'));
    });
  }

  it('keeps a .cts file CommonJS', async () => {
    const dir = project(
      { name: 'app', private: true },
      { 'fleet.config.cts': 'const budget: number = 3;\nmodule.exports = { budget };\n' },
    );
    const module = await loadUserModule(join(dir, 'fleet.config.cts'), 'config');
    expect(defaultExport(module)).toEqual({ budget: 3 });
  });
});
