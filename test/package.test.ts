/**
 * The built package, as a user gets it: `npm test` runs `npm run build` first, and this
 * suite imports the entry that package.json points at, not the TypeScript sources; then
 * packs it (`npm pack`), installs the tarball in a fresh folder that cannot see this
 * repository's node_modules, and runs the `tenant-fleet` command there with `npx`, with a
 * handlers module that imports `'tenant-fleet'`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { Org, OrgListOptions, OrgRegistry, SecretsResolver } from '../src/index.js';
import { connect } from '../src/tenancy/drivers/index.js';
import { type CliProcess, childEnv, startCli } from './cli/support.js';
import { deletePrefix } from './queue/engines.js';
import { requireBuilt } from './support/built.js';
import { postgresCase } from './support/databases.js';
import { PG_URL, REDIS_URL, tempDir, uniqueName, withDatabase } from './support/services.js';
import { until } from './support/wait.js';

const run = promisify(execFile);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: { '.': { import: string; types: string; default: string } };
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
    expect(pkg.exports['.'].default).toBe('./dist/src/index.js');
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

describe('the command in the repository', () => {
  it('runs as `npm run fleet -- …`', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'fleet', '--', 'orgs', 'list', '--help'], {
      cwd: root,
      env: childEnv(),
    });
    expect(stdout).toMatch(/Usage: tenant-fleet orgs list/);
  });
});

describe('the packed package, installed in a fresh folder', () => {
  const dir = tempDir('tenant-fleet-installed-');
  const pg = postgresCase();
  afterAll(async () => {
    await pg.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // npm in a folder of its own; FLEET_* of the test run stay out.
  const inDir = (command: 'npm' | 'npx', args: string[], loglevel = 'error') =>
    run(command, args, { cwd: dir, env: childEnv({ npm_config_loglevel: loglevel }), maxBuffer: 1 << 24 });

  it('installs from the tarball, runs `npx tenant-fleet`, and a worker loads handlers importing tenant-fleet', async () => {
    requireBuilt(entry);
    // No prepack build: `npm test` built dist first, and a rebuild here would rewrite it
    // under the suites running beside this one.
    const { stdout: packed } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], {
      cwd: root,
      env: childEnv(),
    });
    const tarball = join(dir, packed.trim().split('\n').at(-1)!);
    expect(existsSync(tarball)).toBe(true);
    // npm init's default: a CommonJS project (no `type`).
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'my-app', private: true }));
    // Registry packages come from npm's cache when it has them; the native SQLite
    // binding's install script is not needed here (the registry below is Postgres). tsx
    // as README says, to load a TypeScript handlers file as is.
    const install = await inDir(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball, 'tsx'],
      'warn',
    );
    // Every package installed supports the Node running the suite (20 and 24 in CI): a
    // dependency's newest release may ask for more than tenant-fleet's own engines.
    expect(install.stderr).not.toMatch(/EBADENGINE/);
    expect(existsSync(join(dir, 'node_modules', 'tenant-fleet', 'dist', 'src', 'cli', 'main.js'))).toBe(true);
    // The package ships no TypeScript sources: each source map carries its own, so a stack
    // trace (--enable-source-maps) or a debugger shows them.
    const installed = join(dir, 'node_modules', 'tenant-fleet', 'dist');
    const maps = readdirSync(installed, { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.js.map'),
    );
    expect(maps.length).toBeGreaterThan(50);
    for (const file of maps) {
      const map = JSON.parse(readFileSync(join(installed, file), 'utf8')) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      expect(map.sourcesContent?.length, file).toBe(map.sources.length);
      expect(
        map.sourcesContent!.every((text) => typeof text === 'string' && text.length > 0),
        file,
      ).toBe(true);
    }

    const help = await inDir('npx', ['tenant-fleet', '--help']);
    expect(help.stdout).toMatch(/Usage: tenant-fleet/);
    // CommonJS (npm init's default type) requires it too: Node's require of an ES module.
    const required = await run(
      process.execPath,
      [
        '-e',
        "console.log(typeof require('tenant-fleet').defineHandlers, typeof require('tenant-fleet/dashboard').startDashboard)",
      ],
      { cwd: dir, env: childEnv() },
    );
    expect(required.stdout.trim()).toBe('function function');

    const store = await pg.createStore();
    try {
      const seen = join(dir, 'seen.txt');
      writeFileSync(seen, '');
      writeFileSync(
        join(dir, 'handlers.mjs'),
        `import { appendFileSync } from 'node:fs';
import { defineHandlers } from 'tenant-fleet';
export default defineHandlers({
  reports: async (job) => appendFileSync(${JSON.stringify(seen)}, job.tenant + ' ' + job.name + '\\n'),
});
`,
      );
      writeFileSync(
        join(dir, 'fleet.config.json'),
        JSON.stringify({
          registryUrl: store.url,
          engine: 'memory',
          logLevel: 'info',
          schedules: [{ id: 'tick', cron: '* * * * * *', queue: 'reports', name: 'tick' }],
        }),
      );
      await inDir('npx', ['tenant-fleet', 'orgs', 'add', 'acme', '--mode', 'schema', '--provision']);
      // The installed bin, started the way npx does: its own folder, no repository around it.
      const worker = startCli(['worker', '--handlers', './handlers.mjs', '--schedules'], {
        cwd: dir,
        cli: join(dir, 'node_modules', '.bin', 'tenant-fleet'),
      });
      try {
        await until(() => readFileSync(seen, 'utf8').includes('acme tick'), 'a scheduled job to run');
        worker.child.kill('SIGTERM');
        expect(await worker.exit).toBe(0);
      } finally {
        if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
      }
    } finally {
      await store.drop();
    }
  }, 600_000);

  it("runs README's walk with the installed package: tenants, migrations, a worker, a job, a schedule", async () => {
    const bin = join(dir, 'node_modules', '.bin', 'tenant-fleet');
    expect(existsSync(bin), 'the package installed by the test above').toBe(true);
    const store = await pg.createStore();
    const globexDb = uniqueName('globex');
    const prefix = uniqueName('readme');
    const env = {
      FLEET_REGISTRY_URL: store.url,
      FLEET_REDIS_URL: REDIS_URL,
      FLEET_PREFIX: prefix,
      GLOBEX_DB_URL: withDatabase(PG_URL, globexDb),
    };
    const npx = (args: string[]) =>
      run('npx', ['tenant-fleet', ...args], { cwd: dir, env: childEnv(env), maxBuffer: 1 << 24 });
    const rows = async (url: string, table: string) => {
      const conn = await connect(url);
      try {
        return (await conn.query<{ month: string }>(`SELECT month FROM ${table} ORDER BY month`)).map(
          (r) => r.month,
        );
      } finally {
        await conn.close();
      }
    };
    const started: CliProcess[] = [];
    try {
      writeFileSync(join(dir, 'fleet.config.json'), JSON.stringify({ logLevel: 'warn' }));
      // 1. The registry and its tenants.
      await npx(['orgs', 'add', 'acme', '--provision']);
      await npx([
        'orgs',
        'add',
        'globex',
        '--mode',
        'database',
        '--database-url',
        'env://GLOBEX_DB_URL',
        '--weight',
        '3',
        '--provision',
      ]);
      expect((await npx(['orgs', 'list'])).stdout).toMatch(/acme[\s\S]*globex/);
      // 2. The tenants' tables.
      mkdirSync(join(dir, 'migrations'), { recursive: true });
      writeFileSync(
        join(dir, 'migrations', '001_create_report_runs.sql'),
        'create table report_runs (month text not null, at timestamptz not null default now());',
      );
      await npx(['migrate', '--dir', 'migrations/']);
      // 3. A handler per queue: README's handlers.ts, in this CommonJS project, through tsx.
      const readme = readFileSync(join(root, 'README.md'), 'utf8');
      const handlers = /```ts\n(\/\/ handlers\.ts[\s\S]*?)```/.exec(readme)?.[1];
      expect(handlers, "README's handlers.ts").toMatch(/from 'tenant-fleet'/);
      writeFileSync(join(dir, 'handlers.ts'), handlers!);
      // 4. A worker.
      const worker = startCli(['worker', '--handlers', './handlers.ts', '--concurrency', '16'], {
        cwd: dir,
        cli: bin,
        env,
      });
      started.push(worker);
      // 5. A job.
      await npx([
        'enqueue',
        'reports',
        'acme',
        'monthly',
        '--data',
        '{"month":"2026-11"}',
        '--attempts',
        '3',
      ]);
      await until(
        async () => (await rows(store.url, 'acme.report_runs')).includes('2026-11'),
        "acme's job to run",
      );
      // 6. A schedule (every second here, nightly in README).
      writeFileSync(
        join(dir, 'fleet.config.json'),
        JSON.stringify({
          logLevel: 'warn',
          schedules: [
            {
              id: 'nightly-report',
              cron: '* * * * * *',
              queue: 'reports',
              name: 'nightly',
              data: { month: 'current' },
            },
          ],
        }),
      );
      const scheduler = startCli(['scheduler'], { cwd: dir, cli: bin, env });
      started.push(scheduler);
      await until(
        async () => (await rows(env.GLOBEX_DB_URL, 'report_runs')).includes('current'),
        "the schedule's job to run for globex",
      );
      for (const child of [scheduler, worker]) {
        child.child.kill('SIGTERM');
        expect(await child.exit).toBe(0);
      }
    } finally {
      for (const child of started) if (child.child.exitCode === null) child.child.kill('SIGKILL');
      await deletePrefix(prefix);
      await store.drop();
      const admin = await connect(PG_URL);
      await admin.query(`DROP DATABASE IF EXISTS "${globexDb}" WITH (FORCE)`).finally(() => admin.close());
    }
  }, 120_000);
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
