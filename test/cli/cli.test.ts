/**
 * The `tenant-fleet` command end to end, as child processes of the built CLI: help on
 * every command, exit code 2 for a bad flag or configuration (with the key named), the
 * orgs commands, provision, prewarm, migrate, enqueue, and a worker plus a scheduler
 * on BullMQ that stop gracefully (exit 0) on SIGTERM and SIGINT.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { deletePrefix } from '../queue/engines.js';
import { postgresCase, sqliteCase } from '../support/databases.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { ROOT, runCli, startCli } from './support.js';

let dir: string;
let registryUrl: string;
let env: Record<string, string>;

beforeAll(() => {
  dir = tempDir('tenant-fleet-cli-');
  registryUrl = `sqlite:${join(dir, 'registry.db')}`;
  env = { FLEET_REGISTRY_URL: registryUrl, FLEET_LOG_LEVEL: 'warn' };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tenantUrl = (slug: string) => `sqlite:${join(dir, 'tenants', `${slug}.db`)}`;

describe('help and usage errors', () => {
  const commands = [
    [],
    ['worker'],
    ['scheduler'],
    ['orgs'],
    ['orgs', 'add'],
    ['orgs', 'list'],
    ['orgs', 'update'],
    ['orgs', 'deactivate'],
    ['orgs', 'remove'],
    ['provision'],
    ['migrate'],
    ['prewarm'],
    ['enqueue'],
    ['config'],
    ['purge'],
    ['demo'],
  ];

  it('prints help for every command and exits 0', async () => {
    const runs = await Promise.all(commands.map((command) => runCli([...command, '--help'])));
    runs.forEach((run, i) => {
      expect(run.code, `${commands[i]!.join(' ')} --help`).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`Usage: tenant-fleet ${commands[i]!.join(' ')}`.trim()));
    });
  });

  it('exits 2 naming an unknown flag', async () => {
    const run = await runCli(['orgs', 'list', '--bogus'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown option '--bogus'/);
  });

  it('exits 2 naming a flag with a bad value', async () => {
    const run = await runCli(['orgs', 'add', 'acme', '--weight', 'heavy'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--weight.*expected an integer ≥ 1, got "heavy"/);
  });

  it('exits 2 on an unknown command and on a missing required flag', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    const run = await runCli(['migrate'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--dir/);
  });

  it('exits 2 naming a bad environment variable, expected and got', async () => {
    const run = await runCli(['orgs', 'list'], { env: { ...env, FLEET_BUDGET: '-3' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/`budget` \(from env FLEET_BUDGET\).*>=1.*got -3/);
  });

  it('exits 2 naming a bad key of the config file, and an unknown one', async () => {
    const cwd = tempDir('tenant-fleet-cli-config-');
    try {
      writeFileSync(join(cwd, 'fleet.config.json'), JSON.stringify({ registryUrl, engine: 'kafka' }));
      let run = await runCli(['orgs', 'list'], { cwd });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/`engine` \(from .*fleet\.config\.json\).*got "kafka"/);
      writeFileSync(join(cwd, 'fleet.config.json'), JSON.stringify({ registryUrl, maxConections: 3 }));
      run = await runCli(['orgs', 'list'], { cwd });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/unknown key `maxConections`/);
      // The same file read through --config, with a valid value, works.
      writeFileSync(join(cwd, 'other.json'), JSON.stringify({ registryUrl, logLevel: 'warn' }));
      run = await runCli(['--config', 'other.json', 'config'], { cwd });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/"logLevel":\s*"warn"/);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('orgs list on a database without the registry table (a mistyped URL) exits 2 and creates nothing there', async () => {
    for (const makeCase of [postgresCase, sqliteCase]) {
      const store = makeCase();
      try {
        const empty = await store.createStore();
        try {
          // The database is there (a SQLite store is a file only once opened), empty.
          await (await connect(empty.url)).close();
          // A password in the URL stays out of the message.
          const url = empty.url.replace('postgres://postgres@', 'postgres://postgres:s3cret@');
          const run = await runCli(['orgs', 'list'], { env: { ...env, FLEET_REGISTRY_URL: url } });
          expect(run.code).toBe(2);
          expect(run.stderr).toMatch(
            /Expected the tenant registry \(table fleet_orgs\) in .*got a database without it/,
          );
          expect(run.stderr).toMatch(/tenant-fleet orgs add/);
          expect(run.stderr).not.toContain('s3cret');
          const check = await OrgRegistry.open(empty.url);
          try {
            expect(await check.isMigrated()).toBe(false);
          } finally {
            await check.close();
          }
        } finally {
          await empty.drop();
        }
      } finally {
        await store.close();
      }
    }
    // A SQLite file that is not there is not created.
    const missing = join(dir, 'no-such-dir', 'registry.db');
    const run = await runCli(['orgs', 'list'], { env: { ...env, FLEET_REGISTRY_URL: `sqlite:${missing}` } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Expected the tenant registry \(table fleet_orgs\) in .*got no such file/);
    expect(existsSync(missing)).toBe(false);
  });

  it('exits 2 when no registry is configured', async () => {
    const run = await runCli(['orgs', 'list'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/FLEET_REGISTRY_URL/);
  });
});

describe('orgs, provision and prewarm', () => {
  it('adds, lists, updates and deactivates orgs', async () => {
    let run = await runCli(
      ['orgs', 'add', 'acme', '--mode', 'database', '--database-url', tenantUrl('acme'), '--provision'],
      { env },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^acme\tactive\tdatabase sqlite:/);
    expect(existsSync(join(dir, 'tenants', 'acme.db'))).toBe(true);
    run = await runCli(
      ['orgs', 'add', 'globex', '--mode', 'database', '--database-url', tenantUrl('globex'), '--weight', '3'],
      { env },
    );
    expect(run.code).toBe(0);

    run = await runCli(['orgs', 'list', '--json'], { env });
    expect(run.code).toBe(0);
    const listed = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { slug: string; weight: number });
    expect(listed.map((o) => [o.slug, o.weight])).toEqual([
      ['acme', 1],
      ['globex', 3],
    ]);

    run = await runCli(['orgs', 'update', 'acme', '--weight', '2', '--max-concurrency', '4', '--json'], {
      env,
    });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ slug: 'acme', weight: 2, maxConcurrency: 4 });

    run = await runCli(
      ['orgs', 'add', 'initech', '--mode', 'database', '--database-url', tenantUrl('initech')],
      { env },
    );
    run = await runCli(['orgs', 'deactivate', 'initech'], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^initech\tinactive/);
    run = await runCli(['orgs', 'list', '--active'], { env });
    expect(
      run.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t')[0]),
    ).toEqual(['acme', 'globex']);
  });

  it('refuses a duplicate slug with exit 2 and an unknown one with exit 1', async () => {
    const dup = await runCli(
      ['orgs', 'add', 'acme', '--mode', 'database', '--database-url', tenantUrl('acme')],
      { env },
    );
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already registered/);
    const unknown = await runCli(['orgs', 'update', 'nobody', '--weight', '2'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown slug "nobody"/);
  });

  it('never prints a database password', async () => {
    const run = await runCli(
      [
        'orgs',
        'add',
        'secretive',
        '--mode',
        'database',
        '--database-url',
        'postgres://app:s3cr3t-pw@127.0.0.1:1/x',
        '--inactive',
      ],
      { env },
    );
    expect(run.code).toBe(0);
    const list = await runCli(['orgs', 'list', '--json'], { env });
    expect(`${run.stdout}${run.stderr}${list.stdout}${list.stderr}`).not.toContain('s3cr3t-pw');
    expect(list.stdout).toContain('postgres://app:***@127.0.0.1:1/x');
  });

  it('provisions every active tenant and prewarms their pools', async () => {
    const provision = await runCli(['provision', '--all'], { env });
    expect(provision.code).toBe(0);
    expect(provision.stdout).toMatch(/^acme\tdatabase\tsqlite\t.*existed$/m);
    expect(provision.stdout).toMatch(/^globex\tdatabase\tsqlite\t.*created$/m);
    const prewarm = await runCli(['prewarm', '--json'], { env });
    expect(prewarm.code).toBe(0);
    expect(JSON.parse(prewarm.stdout)).toMatchObject({ totalActive: 2, warmed: 2, failed: 0 });
  });
});

describe('migrate', () => {
  it('migrates every active tenant, then finds them up to date; a failing tenant makes exit 1', async () => {
    const migrations = join(dir, 'migrations');
    mkdirSync(migrations, { recursive: true });
    writeFileSync(
      join(migrations, '001_create_notes.sql'),
      'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);',
    );
    let run = await runCli(['migrate', '--dir', migrations, '--engine', 'memory'], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^migrated\tacme\t1$/m);
    expect(run.stdout).toMatch(/^migrated\tglobex\t1$/m);
    expect(run.stdout).toMatch(/2 migrated, 0 up to date, 0 failed/);
    expect(run.stderr).toMatch(/progress: 2\/2 done, 0 failed/);

    // A second file that only one tenant cannot take.
    writeFileSync(join(migrations, '002_seed.sql'), "INSERT INTO notes (id, body) VALUES (1, 'hello');");
    const globex = await connect(tenantUrl('globex'));
    await globex.query("INSERT INTO notes (id, body) VALUES (1, 'taken')");
    await globex.close();
    run = await runCli(['migrate', '--dir', migrations, '--engine', 'memory', '--json'], { env });
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as {
      migrated: { tenant: string; applied: number[] }[];
      failed: { tenant: string; version: number; error: string }[];
    };
    expect(report.migrated).toEqual([{ tenant: 'acme', applied: [2] }]);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]).toMatchObject({ tenant: 'globex', version: 2 });
    expect(report.failed[0]!.error).toMatch(/UNIQUE/i);

    // Once the conflict is gone, only globex's missing version runs; acme is up to date.
    const fixed = await connect(tenantUrl('globex'));
    await fixed.query('DELETE FROM notes WHERE id = 1');
    await fixed.close();
    run = await runCli(['migrate', '--dir', migrations, '--engine', 'memory'], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^migrated\tglobex\t2$/m);
    expect(run.stdout).toMatch(/^up-to-date\tacme$/m);
  });
});

describe('worker, enqueue and scheduler on BullMQ', () => {
  it('runs handlers for enqueued and scheduled jobs, and both stop with exit 0', async () => {
    const prefix = uniqueName('fleetcli');
    const seen = join(dir, 'seen.txt');
    writeFileSync(seen, '');
    const cwd = tempDir('tenant-fleet-cli-worker-');
    writeFileSync(
      join(cwd, 'handlers.mjs'),
      `import { appendFileSync } from 'node:fs';
import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({
  reports: async (job, ctx) => {
    const [row] = await ctx.db.query('select 1 as one');
    appendFileSync(${JSON.stringify(seen)}, job.tenant + ' ' + job.name + ' ' + row.one + '\\n');
  },
});
`,
    );
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({
        registryUrl,
        engine: 'bullmq',
        redisUrl: REDIS_URL,
        prefix,
        logLevel: 'info',
        worker: { concurrency: 4, startup: 'blocking', jobsPerTurn: 2 },
        schedules: [{ id: 'every-second', cron: '* * * * * *', queue: 'reports', name: 'tick', data: {} }],
      }),
    );
    const lines = () => readFileSync(seen, 'utf8').trim().split('\n').filter(Boolean);
    const worker = startCli(
      ['worker', '--handlers', './handlers.mjs', '--queue', 'reports', '--jobs-per-turn', '3'],
      { cwd },
    );
    const scheduler = startCli(['scheduler'], { cwd });
    try {
      const enqueued = await runCli(['enqueue', 'reports', 'acme', 'render', '--data', '{"n":1}'], { cwd });
      expect(enqueued.code).toBe(0);
      expect(enqueued.stdout.trim()).not.toBe('');

      await until(() => lines().includes('acme render 1'), 'the enqueued job to run');
      await until(
        () => ['acme', 'globex'].every((t) => lines().includes(`${t} tick 1`)),
        'a scheduled job for each active tenant',
      );
      // The deactivated tenants never got a scheduled job.
      expect(lines().some((l) => l.startsWith('initech') || l.startsWith('secretive'))).toBe(false);
      expect(worker.stderr()).toMatch(/pools prewarmed/);
      // The flag wins over the config file's worker.jobsPerTurn (2).
      expect(worker.stderr()).toMatch(/"jobsPerTurn":3/);

      scheduler.child.kill('SIGTERM');
      worker.child.kill('SIGINT');
      expect(await scheduler.exit).toBe(0);
      expect(await worker.exit).toBe(0);
      expect(worker.stderr()).toMatch(/shutting down/);
    } finally {
      for (const run of [worker, scheduler]) if (run.child.exitCode === null) run.child.kill('SIGKILL');
      await deletePrefix(prefix);
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('exits 2 for enqueue on the memory engine and for a missing handlers file', async () => {
    const enqueue = await runCli(['enqueue', 'reports', 'acme', 'render', '--engine', 'memory'], { env });
    expect(enqueue.code).toBe(2);
    expect(enqueue.stderr).toMatch(/engine 'bullmq'/);
    const worker = await runCli(['worker', '--handlers', './nowhere.mjs'], { env, cwd: dir });
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/`handlers`.*nowhere\.mjs/);
  });
});
