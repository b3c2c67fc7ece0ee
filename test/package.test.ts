/**
 * The built package, as a user gets it: `npm test` runs `npm run build` first, and this
 * suite imports the entry that package.json points at, not the TypeScript sources.
 */
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { Org, OrgListOptions, OrgRegistry, SecretsResolver } from '../src/index.js';
import { requireBuilt } from './support/built.js';
import { tempDir } from './support/services.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: { '.': { import: string; types: string } };
};
const entry = join(root, pkg.exports['.'].import);
const types = join(root, pkg.exports['.'].types);

async function importBuilt(): Promise<typeof import('../src/index.js')> {
  requireBuilt(entry);
  return import(pathToFileURL(entry).href);
}

describe('the built package', () => {
  const dir = tempDir('tenant-fleet-package-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('points package.json at dist/src/index.js with its declarations', () => {
    expect(pkg.exports['.'].import).toBe('./dist/src/index.js');
    requireBuilt(types);
    const declarations = readFileSync(types, 'utf8');
    expect(declarations).toMatch(/\bOrgRegistry\b/);
    expect(declarations).toMatch(/\bFleetError\b/);
  });

  it('exports a working OrgRegistry and FleetError', async () => {
    const built = await importBuilt();
    expect(typeof built.OrgRegistry.open).toBe('function');

    const registry = await built.OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`);
    try {
      await registry.migrate();
      const org = await registry.add({ slug: 'acme', storageMode: 'database', databaseUrl: 'env://ACME_DB' });
      expect(await registry.get('acme')).toEqual(org);
      const err = await registry.add({ slug: 'Bad Slug' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(built.FleetError);
      expect(err).toBeInstanceOf(built.ValidationError);
      expect((err as InstanceType<typeof built.ValidationError>).field).toBe('slug');
    } finally {
      await registry.close();
    }

    const error = new built.FleetError('CONFIG', 'Expected x, got y');
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('CONFIG');
    expect(error.name).toBe('FleetError');
  });
});

describe('the public types', () => {
  it('give the registry the signatures TenantPools and the scheduler rely on', () => {
    expectTypeOf<OrgRegistry['get']>().toEqualTypeOf<(slug: string) => Promise<Org>>();
    expectTypeOf<OrgRegistry['find']>().toEqualTypeOf<(slug: string) => Promise<Org | null>>();
    expectTypeOf<OrgRegistry['list']>().parameter(0).toEqualTypeOf<OrgListOptions | undefined>();
    expectTypeOf<OrgListOptions>().toEqualTypeOf<{ active?: boolean; after?: string; limit?: number }>();
    expectTypeOf<OrgRegistry['kind']>().toEqualTypeOf<'postgres' | 'mysql' | 'sqlite'>();
    expectTypeOf<OrgRegistry['databaseUrl']>().toEqualTypeOf<string>();
    expectTypeOf<OrgRegistry['secrets']>().toEqualTypeOf<SecretsResolver>();
    expectTypeOf<Org['createdAt']>().toEqualTypeOf<Date>();
    expectTypeOf<Org['active']>().toEqualTypeOf<boolean>();
  });
});
