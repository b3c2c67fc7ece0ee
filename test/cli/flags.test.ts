/**
 * Every flag of every command reaches the value it names: table-driven, one row per flag,
 * each checked where the value lands (the registry row, the configuration in effect, the
 * stored job, the running worker's options or the command's --json output). A last test
 * walks the program's tree, so a flag added without a row here fails the suite.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { resolveFleetWorkerOptions } from '../../src/worker/worker-options.js';
import { deletePrefix } from '../queue/engines.js';
import { postgresCase, type Store } from '../support/databases.js';
import { freePort } from '../support/net.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { ROOT, runCli, startCli } from './support.js';

/** `command --flag` for every flag a row below checks. */
const covered = new Set<string>();
const cover = (command: string, ...flags: string[]) => {
  for (const flag of flags) covered.add(`${command} ${flag}`.trim());
};

const pg = postgresCase();
let store: Store;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  store = await pg.createStore();
  dir = tempDir('tenant-fleet-flags-');
  env = { FLEET_REGISTRY_URL: store.url, FLEET_LOG_LEVEL: 'warn' };
});

afterAll(async () => {
  await store.drop();
  await pg.close();
  rmSync(dir, { recursive: true, force: true });
});

const tenantUrl = (slug: string) => `sqlite:${join(dir, 'tenants', `${slug}.db`)}`;

async function json(args: string[], extraEnv: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const run = await runCli(args, { env: { ...env, ...extraEnv }, cwd: dir });
  expect(run.code, `${args.join(' ')}\n${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

async function registryRow(slug: string) {
  const registry = await OrgRegistry.open(store.url);
  try {
    return await registry.get(slug);
  } finally {
    await registry.close();
  }
}

/** The JSON of the first log line of `stderr` whose message is `msg`. */
function logLine(stderr: string, msg: RegExp): Record<string, unknown> | null {
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (msg.test(String(entry.msg))) return entry;
  }
  return null;
}

describe('global flags', () => {
  const cases: Array<[flag: string, value: string, key: string, expected: unknown]> = [
    ['--registry-url', 'sqlite:elsewhere.db', 'registryUrl', 'sqlite:elsewhere.db'],
    ['--engine', 'memory', 'engine', 'memory'],
    ['--redis-url', 'redis://app:s3cret@127.0.0.1:6390', 'redisUrl', 'redis://app:***@127.0.0.1:6390'],
    ['--engine', 'pgboss', 'engine', 'pgboss'],
    [
      '--pgboss-url',
      'postgres://app:s3cret@127.0.0.1:5433/jobs',
      'pgbossUrl',
      'postgres://app:***@127.0.0.1:5433/jobs',
    ],
    ['--prefix', 'flagged', 'prefix', 'flagged'],
    ['--budget', '7', 'budget', 7],
    [
      '--server-budget',
      '127.0.0.1:5432=24,*=10',
      'fleetBudget',
      { perServer: { '127.0.0.1:5432': 24 }, defaultPerServer: 10 },
    ],
    ['--log-level', 'debug', 'logLevel', 'debug'],
    ['--log-format', 'pretty', 'logFormat', 'pretty'],
  ];
  it.each(cases)('%s %s sets `%s` of the configuration', async (flag, value, key, expected) => {
    cover('', flag);
    const out = await json(['config', flag, value]);
    expect((out.config as Record<string, unknown>)[key]).toEqual(expected);
  });

  it('--config reads the file it names', async () => {
    cover('', '--config');
    writeFileSync(join(dir, 'other.json'), JSON.stringify({ prefix: 'from-file', budget: 3 }));
    const out = await json(['--config', 'other.json', 'config']);
    expect(out.file).toBe(join(dir, 'other.json'));
    expect(out.config).toMatchObject({ prefix: 'from-file', budget: 3 });
  });

  it('--budget is the budget TenantPools gets, and the old --max-connections is no global flag', async () => {
    const run = await runCli(['--max-connections', '3', 'orgs', 'list'], { env, cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown option '--max-connections'/);
    const fromEnv = await json(['config'], { FLEET_BUDGET: '6' });
    expect(fromEnv.config).toMatchObject({ budget: 6 });
  });
});

describe('orgs', () => {
  it('add: every flag lands in the registry row', async () => {
    cover(
      'orgs add',
      '--mode',
      '--database-url',
      '--schema',
      '--weight',
      '--max-concurrency',
      '--max-connections',
      '--inactive',
      '--provision',
      '--json',
    );
    const db = await json([
      'orgs',
      'add',
      'acme',
      '--mode',
      'database',
      '--database-url',
      tenantUrl('acme'),
      '--weight',
      '3',
      '--max-concurrency',
      '4',
      '--max-connections',
      '5',
      '--provision',
      '--json',
    ]);
    expect(db).toMatchObject({
      slug: 'acme',
      storageMode: 'database',
      weight: 3,
      maxConcurrency: 4,
      maxConnections: 5,
    });
    expect(await registryRow('acme')).toMatchObject({
      storageMode: 'database',
      databaseUrl: tenantUrl('acme'),
      weight: 3,
      maxConcurrency: 4,
      maxConnections: 5,
      active: true,
    });
    expect(existsSync(join(dir, 'tenants', 'acme.db'))).toBe(true);

    const schema = await json([
      'orgs',
      'add',
      'globex',
      '--mode',
      'schema',
      '--schema',
      'globex_s',
      '--json',
    ]);
    expect(schema).toMatchObject({ storageMode: 'schema', schemaName: 'globex_s' });
    const none = await json(['orgs', 'add', 'initech', '--max-connections', 'none', '--inactive', '--json']);
    expect(none).toMatchObject({ maxConnections: null, active: false });
    expect(await registryRow('initech')).toMatchObject({ maxConnections: null, active: false });
  });

  it('update: every flag lands in the registry row, none clears an override', async () => {
    cover(
      'orgs update',
      '--weight',
      '--max-concurrency',
      '--max-connections',
      '--database-url',
      '--activate',
      '--json',
    );
    const out = await json([
      'orgs',
      'update',
      'initech',
      '--weight',
      '2',
      '--max-concurrency',
      '6',
      '--max-connections',
      '3',
      '--activate',
      '--json',
    ]);
    expect(out).toMatchObject({ weight: 2, maxConcurrency: 6, maxConnections: 3, active: true });
    expect(await registryRow('initech')).toMatchObject({
      weight: 2,
      maxConcurrency: 6,
      maxConnections: 3,
      active: true,
    });

    await json([
      'orgs',
      'update',
      'initech',
      '--max-concurrency',
      'none',
      '--max-connections',
      'none',
      '--json',
    ]);
    expect(await registryRow('initech')).toMatchObject({ maxConcurrency: null, maxConnections: null });

    await json(['orgs', 'update', 'acme', '--database-url', 'env://ACME_DB', '--json']);
    expect((await registryRow('acme')).databaseUrl).toBe('env://ACME_DB');
    await json(['orgs', 'update', 'acme', '--database-url', tenantUrl('acme'), '--json']);
  });

  it('deactivate --json, list --active / --inactive / --after / --limit / --json', async () => {
    cover('orgs deactivate', '--json');
    cover('orgs list', '--active', '--inactive', '--after', '--limit', '--json');
    expect(await json(['orgs', 'deactivate', 'initech', '--json'])).toMatchObject({
      slug: 'initech',
      active: false,
    });
    expect((await registryRow('initech')).active).toBe(false);
    const slugs = async (...args: string[]) => {
      const run = await runCli(['orgs', 'list', '--json', ...args], { env, cwd: dir });
      expect(run.code, run.stderr).toBe(0);
      return run.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { slug: string }).slug);
    };
    expect(await slugs()).toEqual(['acme', 'globex', 'initech']);
    expect(await slugs('--active')).toEqual(['acme', 'globex']);
    expect(await slugs('--inactive')).toEqual(['initech']);
    expect(await slugs('--after', 'acme')).toEqual(['globex', 'initech']);
    expect(await slugs('--limit', '1')).toEqual(['acme']);
  });

  it('refuses contradicting or out-of-range values with exit 2', async () => {
    const bad: Array<[string[], RegExp]> = [
      [['orgs', 'list', '--active', '--inactive'], /'--active' cannot be used with option '--inactive'/],
      [
        ['orgs', 'add', 'x1', '--max-connections', '0'],
        /--max-connections.*expected an integer ≥ 1, got "0"/,
      ],
      [['orgs', 'update', 'acme', '--max-connections', 'lots'], /--max-connections.*got "lots"/],
      [['--budget', '0', 'orgs', 'list'], /`budget` \(from flag --budget\).*got 0/],
      [
        ['demo', '--cron', '0 0 3 * * * 2030'],
        /--cron.*5 fields, or 6 with seconds first.*"0 0 3 \* \* \* 2030"/,
      ],
    ];
    const runs = await Promise.all(bad.map(([args]) => runCli(args, { env, cwd: dir })));
    runs.forEach((run, i) => {
      expect(run.code, bad[i]![0].join(' ')).toBe(2);
      expect(run.stderr).toMatch(bad[i]![1]);
    });
  });

  it('a 7-field cron in the config is refused with exit 2', async () => {
    const cwd = tempDir('tenant-fleet-flags-cron-');
    try {
      writeFileSync(
        join(cwd, 'fleet.config.json'),
        JSON.stringify({
          registryUrl: store.url,
          schedules: [{ id: 'y', cron: '0 0 3 * * * 2030', queue: 'q', name: 'n' }],
        }),
      );
      const run = await runCli(['scheduler'], { cwd });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/`schedules\.0\.cron`.*5 fields, or 6 with seconds first.*2030/);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('provision, prewarm and migrate', () => {
  it('provision <slugs> / --all / --json, prewarm --json', async () => {
    cover('provision', '--all', '--json');
    cover('prewarm', '--json');
    const one = await json(['provision', 'globex', '--json']);
    expect(one).toMatchObject({ storageMode: 'schema', target: 'globex_s' });
    const all = await runCli(['provision', '--all', '--json'], { env, cwd: dir });
    expect(all.code).toBe(0);
    const targets = all.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { slug?: string; target: string }).target);
    expect(targets).toHaveLength(2);
    expect(targets).toContain('globex_s');
    expect(await json(['prewarm', '--json'])).toMatchObject({ totalActive: 2, warmed: 2, failed: 0 });
  });

  it('migrate --dir / --concurrency / --stall-timeout / --json', async () => {
    cover('migrate', '--dir', '--concurrency', '--stall-timeout', '--json');
    const migrations = join(dir, 'migrations');
    mkdirSync(migrations, { recursive: true });
    writeFileSync(join(migrations, '001_notes.sql'), 'CREATE TABLE notes (id INTEGER PRIMARY KEY);');
    const run = await runCli(
      [
        'migrate',
        '--dir',
        migrations,
        '--concurrency',
        '2',
        '--stall-timeout',
        '60000',
        '--json',
        '--engine',
        'memory',
      ],
      { env: { ...env, FLEET_LOG_LEVEL: 'info' }, cwd: dir },
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { versions: number[]; migrated: { tenant: string }[] };
    expect(report.versions).toEqual([1]);
    expect(report.migrated.map((m) => m.tenant).sort()).toEqual(['acme', 'globex']);
    expect(logLine(run.stderr, /^migrating/)).toMatchObject({
      dir: migrations,
      concurrency: 2,
      stallTimeoutMs: 60000,
    });
  });
});

describe('enqueue', () => {
  it('--data / --job-id / --delay / --priority / --attempts land in the stored job', async () => {
    cover('enqueue', '--data', '--job-id', '--delay', '--priority', '--attempts');
    const prefix = uniqueName('fleetflags');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    try {
      const run = await runCli(
        [
          'enqueue',
          'reports',
          'acme',
          'render',
          '--data',
          '{"n":7}',
          '--job-id',
          'flag-job',
          '--delay',
          '600000',
          '--priority',
          '3',
          '--attempts',
          '4',
          '--prefix',
          prefix,
          '--redis-url',
          REDIS_URL,
        ],
        { env, cwd: dir },
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.trim()).toBe('flag-job');
      expect(await engine.getJob('reports', 'acme', 'flag-job')).toMatchObject({
        name: 'render',
        data: { n: 7 },
        state: 'delayed',
        priority: 3,
        maxAttempts: 4,
      });
    } finally {
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});

describe('purge', () => {
  it('--queue / --tenant / --json remove the jobs they name', async () => {
    cover('purge', '--queue', '--tenant', '--json');
    const prefix = uniqueName('fleetflags');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    const purge = (...args: string[]) =>
      json(['purge', '--json', '--prefix', prefix, '--redis-url', REDIS_URL, ...args]);
    try {
      await engine.enqueueBulk('reports', [
        { tenant: 'acme', name: 'n', data: 1 },
        { tenant: 'globex', name: 'n', data: 2 },
      ]);
      await engine.enqueue('emails', { tenant: 'acme', name: 'n', data: 3 });
      expect(await purge('--queue', 'reports', '--tenant', 'acme')).toEqual({
        queue: 'reports',
        tenants: ['acme'],
      });
      expect((await engine.counts('reports', 'acme')).waiting).toBe(0);
      expect((await engine.counts('reports', 'globex')).waiting).toBe(1);
      expect(await purge('--queue', 'reports')).toEqual({ queue: 'reports', tenants: ['globex'] });
      expect((await engine.counts('reports', 'globex')).waiting).toBe(0);
      expect((await engine.counts('emails', 'acme')).waiting).toBe(1);
    } finally {
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});

describe('orgs remove', () => {
  it("--purge-jobs / --json remove the row, then the tenant's jobs of every queue", async () => {
    cover('orgs remove', '--purge-jobs', '--json');
    const prefix = uniqueName('fleetflags');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    const remove = (...args: string[]) =>
      json(['orgs', 'remove', '--json', '--prefix', prefix, '--redis-url', REDIS_URL, ...args]);
    const add = (slug: string) =>
      json(['orgs', 'add', slug, '--json', '--mode', 'database', '--database-url', tenantUrl(slug)]);
    try {
      await add('rm-kept');
      await add('rm-purged');
      await engine.enqueueBulk('reports', [
        { tenant: 'rm-kept', name: 'n', data: 1 },
        { tenant: 'rm-purged', name: 'n', data: 2 },
      ]);
      await engine.enqueue('emails', { tenant: 'rm-kept', name: 'n', data: 3 });
      await engine.enqueue('emails', { tenant: 'rm-purged', name: 'n', data: 4, delayMs: 60_000 });
      await engine.enqueue('emails-rm', { tenant: 'rm-purged', name: 'n', data: 5 });

      // Without --purge-jobs the jobs stay.
      expect(await remove('rm-kept')).toMatchObject({ slug: 'rm-kept' });
      expect(
        await OrgRegistry.open(store.url).then(async (r) => [await r.find('rm-kept'), await r.close()][0]),
      ).toBeNull();
      expect((await engine.counts('reports', 'rm-kept')).waiting).toBe(1);

      const out = await remove('rm-purged', '--purge-jobs');
      expect(out).toMatchObject({ slug: 'rm-purged', purgedQueues: ['emails', 'emails-rm', 'reports'] });
      expect(await engine.counts('reports', 'rm-purged')).toMatchObject({ waiting: 0, delayed: 0 });
      expect(await engine.counts('emails', 'rm-purged')).toMatchObject({ waiting: 0, delayed: 0 });
      expect((await engine.counts('emails-rm', 'rm-purged')).waiting).toBe(0);
      expect((await engine.counts('reports', 'rm-kept')).waiting).toBe(1);
      expect((await engine.counts('emails', 'rm-kept')).waiting).toBe(1);
      const redis = new Redis(REDIS_URL);
      try {
        expect(await redis.keys(`${prefix}:*.rm-purged:*`)).toEqual([]);
        expect(await redis.zscore(`${prefix}:{emails}:ready`, 'rm-purged')).toBeNull();
      } finally {
        redis.disconnect();
      }

      const unknown = await runCli(
        ['orgs', 'remove', 'rm-purged', '--prefix', prefix, '--redis-url', REDIS_URL],
        {
          env,
          cwd: dir,
        },
      );
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/rm-purged/);
    } finally {
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});

describe('long-running commands', () => {
  it('worker: --metrics-port and --metrics-host reach the metrics server', async () => {
    cover('worker', '--metrics-port', '--metrics-host');
    const cwd = tempDir('tenant-fleet-flags-metrics-');
    writeFileSync(
      join(cwd, 'handlers.mjs'),
      `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async () => {} });
`,
    );
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({ registryUrl: store.url, engine: 'memory', logLevel: 'warn' }),
    );
    // Every interface, which needs the token; /health answers on the loopback one too.
    const worker = startCli(
      ['worker', '--handlers', './handlers.mjs', '--metrics-port', '0', '--metrics-host', '0.0.0.0'],
      { cwd, env: { FLEET_DASHBOARD_TOKEN: 'flags-token' } },
    );
    try {
      const address = /metrics at http:\/\/0\.0\.0\.0:(\d+)\/metrics/;
      await until(() => address.test(worker.stdout()), 'the metrics address');
      const port = address.exec(worker.stdout())![1]!;
      await until(
        async () => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200,
        '/health to answer 200',
      );
      worker.child.kill('SIGTERM');
      expect(await worker.exit).toBe(0);
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('worker: every flag reaches the running worker', async () => {
    cover(
      'worker',
      '--handlers',
      '--queue',
      '--concurrency',
      '--per-tenant-concurrency',
      '--jobs-per-turn',
      '--startup',
      '--no-prewarm',
      '--schedules',
    );
    const cwd = tempDir('tenant-fleet-flags-worker-');
    try {
      writeFileSync(
        join(cwd, 'handlers.mjs'),
        `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async () => {}, emails: async () => {} });
`,
      );
      writeFileSync(
        join(cwd, 'fleet.config.json'),
        JSON.stringify({
          registryUrl: store.url,
          engine: 'memory',
          logLevel: 'info',
          schedules: [{ id: 'hourly', cron: '0 * * * *', queue: 'reports', name: 'tick' }],
        }),
      );
      const running = async (args: string[]) => {
        const worker = startCli(['worker', '--handlers', './handlers.mjs', ...args], { cwd });
        try {
          await until(() => logLine(worker.stderr(), /^worker running/) !== null, 'the worker to run');
          worker.child.kill('SIGTERM');
          expect(await worker.exit).toBe(0);
          // A last line says it stopped.
          expect(logLine(worker.stderr(), /^worker stopped/)).not.toBeNull();
          return logLine(worker.stderr(), /^worker running/)!;
        } finally {
          if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
        }
      };
      const [flagged, plain] = await Promise.all([
        running([
          '--queue',
          'reports',
          '--concurrency',
          '3',
          '--per-tenant-concurrency',
          '2',
          '--jobs-per-turn',
          '5',
          '--startup',
          'background',
          '--no-prewarm',
          '--schedules',
        ]),
        running([]),
      ]);
      expect(flagged).toMatchObject({
        queues: ['reports'],
        concurrency: 3,
        perTenantConcurrency: 2,
        jobsPerTurn: 5,
        startup: 'background',
        prewarm: false,
        schedules: ['hourly'],
      });
      // Unset in flags and config: the library's defaults, the same as the API's.
      expect(plain).toMatchObject({
        queues: ['reports', 'emails'],
        concurrency: resolveFleetWorkerOptions().concurrency,
        startup: 'blocking',
        prewarm: true,
        schedules: [],
      });
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('scheduler --page-size reaches the scheduler', async () => {
    cover('scheduler', '--page-size');
    const cwd = tempDir('tenant-fleet-flags-scheduler-');
    const prefix = uniqueName('fleetflags');
    try {
      writeFileSync(
        join(cwd, 'fleet.config.json'),
        JSON.stringify({
          registryUrl: store.url,
          redisUrl: REDIS_URL,
          prefix,
          logLevel: 'info',
          schedules: [{ id: 'hourly', cron: '0 * * * *', queue: 'reports', name: 'tick' }],
        }),
      );
      const scheduler = startCli(['scheduler', '--page-size', '17'], { cwd });
      try {
        await until(() => logLine(scheduler.stderr(), /^scheduler running/) !== null, 'the scheduler to run');
        scheduler.child.kill('SIGTERM');
        expect(await scheduler.exit).toBe(0);
        expect(logLine(scheduler.stderr(), /^scheduler stopped/)).not.toBeNull();
        expect(logLine(scheduler.stderr(), /^scheduler running/)).toMatchObject({
          pageSize: 17,
          schedules: ['hourly'],
        });
      } finally {
        if (scheduler.child.exitCode === null) scheduler.child.kill('SIGKILL');
      }
    } finally {
      await deletePrefix(prefix);
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('demo --dir / --stats-interval / --cron / --dashboard-port', async () => {
    cover('demo', '--dir', '--stats-interval', '--cron', '--dashboard-port');
    const cwd = tempDir('tenant-fleet-flags-demo-');
    const port = await freePort();
    const demo = startCli(
      [
        'demo',
        '--dir',
        'here',
        '--stats-interval',
        '300',
        '--cron',
        '*/7 * * * * *',
        '--dashboard-port',
        String(port),
      ],
      { cwd },
    );
    try {
      await until(() => /\[stats\]/.test(demo.stdout()), 'a stats line');
      expect(demo.stdout()).toContain(`http://127.0.0.1:${port}/`);
      expect((await fetch(`http://127.0.0.1:${port}/api/fleet`)).status).toBe(200);
      demo.child.kill('SIGINT');
      expect(await demo.exit).toBe(0);
      expect(demo.stdout()).toMatch(/scheduler: .* on "\*\/7 \* \* \* \* \*"/);
      expect(existsSync(join(cwd, 'here', 'registry.db'))).toBe(true);
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('demo on BullMQ', () => {
  it('--keep leaves the keys under its prefix', async () => {
    cover('demo', '--keep');
    const cwd = tempDir('tenant-fleet-flags-keep-');
    const prefix = uniqueName('fleetkeep');
    const demo = startCli(
      ['demo', '--engine', 'bullmq', '--redis-url', REDIS_URL, '--prefix', prefix, '--keep'],
      {
        cwd,
      },
    );
    const redis = new Redis(REDIS_URL);
    try {
      await until(() => /\[stats\]/.test(demo.stdout()), 'a stats line');
      demo.child.kill('SIGINT');
      expect(await demo.exit).toBe(0);
      expect(demo.stdout()).not.toMatch(/removed the demo's/);
      let found = 0;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        found += keys.length;
      } while (cursor !== '0' && found === 0);
      expect(found).toBeGreaterThan(0);
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
      await redis.quit();
      await deletePrefix(prefix);
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('dashboard and status', () => {
  it('dashboard --host / --port / --queue / --read-only / --top reach the running dashboard', async () => {
    cover('dashboard', '--host', '--port', '--queue', '--read-only', '--top');
    const port = await freePort();
    const args = ['--host', '127.0.0.1', '--port', String(port), '--queue', 'q1', '--queue', 'q2'];
    const dashboard = startCli(['dashboard', ...args, '--read-only', '--top', '3'], {
      env: { ...env, FLEET_ENGINE: 'memory', FLEET_LOG_LEVEL: 'info' },
      cwd: dir,
    });
    try {
      await until(
        () => logLine(dashboard.stderr(), /^dashboard running$/) !== null,
        'the dashboard to start',
      );
      expect(logLine(dashboard.stderr(), /^dashboard running$/)).toMatchObject({
        url: `http://127.0.0.1:${port}`,
        auth: 'none',
        queues: ['q1', 'q2'],
        readOnly: true,
        top: 3,
      });
      // The queues named are shown before any worker reported them.
      const page = (await (await fetch(`http://127.0.0.1:${port}/api/fleet`)).json()) as { backlog: object };
      expect(Object.keys(page.backlog).sort()).toEqual(['q1', 'q2']);
      dashboard.child.kill('SIGTERM');
      expect(await dashboard.exit).toBe(0);
    } finally {
      if (dashboard.child.exitCode === null) dashboard.child.kill('SIGKILL');
    }
  });

  it('status --queue / --tenant / --top / --json narrow what it prints', async () => {
    cover('status', '--queue', '--tenant', '--top', '--json');
    const prefix = uniqueName('flags-status');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    try {
      for (const [tenant, n] of [
        ['acme', 3],
        ['globex', 2],
      ] as const)
        for (let i = 0; i < n; i++) await engine.enqueue('q1', { tenant, name: 'x', data: i });
      await engine.enqueue('q2', { tenant: 'acme', name: 'x', data: 0 });
      const status = (...args: string[]) =>
        json(['status', '--queue', 'q1', ...args, '--json'], {
          FLEET_PREFIX: prefix,
          FLEET_ENGINE: 'bullmq',
        });
      // --top 1: only the larger backlog of the two tenants; --queue q1: nothing of q2.
      const top = await status('--top', '1');
      expect((top.top as { backlog: unknown[] }).backlog).toEqual([
        expect.objectContaining({ queue: 'q1', tenant: 'acme', waiting: 3 }),
      ]);
      expect(JSON.stringify(top)).not.toContain('"q2"');
      // --tenant globex: its partition only.
      const one = await status('--tenant', 'globex');
      expect(one.partitions).toEqual([
        expect.objectContaining({ queue: 'q1', tenant: 'globex', waiting: 2 }),
      ]);
      expect(JSON.stringify(one)).not.toContain('acme');
    } finally {
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});

describe('coverage of this table', () => {
  it('has a row for every flag of every command', () => {
    const missing: string[] = [];
    const globals = new Set<string>();
    const walk = (command: ReturnType<typeof buildProgram>, path: string) => {
      for (const option of command.options) {
        const flag = option.long!;
        if (flag === '--version' || flag === '--help') continue;
        if (path === '') globals.add(flag);
        else expect(globals.has(flag), `${path} ${flag} shadows a global flag`).toBe(false);
        if (!covered.has(`${path} ${flag}`.trim())) missing.push(`${path} ${flag}`.trim());
      }
      for (const sub of command.commands) walk(sub, `${path} ${sub.name()}`.trim());
    };
    walk(buildProgram(), '');
    expect(missing).toEqual([]);
  });
});
