/**
 * A command whose Redis or registry does not answer ends with exit code 1 and a message
 * naming the service, its URL (password redacted) and what to do, instead of hanging or
 * printing ioredis' "Unhandled error event". The ports are closed ones (nothing listens).
 * A server that answers but refuses the login is told apart, with the server's reason
 * whole beside the redacted URL.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from '../../support/net.js';
import { startPrivateRedis } from '../../support/private-redis.js';
import { tempDir } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { ROOT, startCli } from '../support.js';

let cwd: string;
let deadRedis: string;
let deadRegistry: string;

beforeAll(async () => {
  cwd = tempDir('tenant-fleet-unreachable-');
  const port = await closedPort();
  deadRedis = `redis://fleet:hunter2@127.0.0.1:${port}`;
  deadRegistry = `postgres://fleet:hunter2@127.0.0.1:${port}/registry`;
  writeFileSync(
    join(cwd, 'handlers.mjs'),
    `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async () => {} });
`,
  );
  writeFileSync(
    join(cwd, 'fleet.config.json'),
    JSON.stringify({
      registryUrl: `sqlite:${join(cwd, 'registry.db')}`,
      engine: 'bullmq',
      schedules: [{ id: 'hourly', cron: '0 * * * *', queue: 'reports', name: 'tick' }],
    }),
  );
});

afterAll(() => rmSync(cwd, { recursive: true, force: true }));

/** Runs the command; the wait is a bound against a hang, generous for a loaded machine. */
async function run(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const cli = startCli(args, { cwd });
  let code: number | null | undefined;
  void cli.exit.then((c) => {
    code = c;
  });
  try {
    await until(() => code !== undefined, `${args.join(' ')} to exit`, { timeoutMs: 30_000, intervalMs: 50 });
  } finally {
    if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
  }
  return { code: code ?? null, stderr: cli.stderr(), stdout: cli.stdout() };
}

describe('an unreachable Redis', () => {
  const commands: string[][] = [
    ['enqueue', 'reports', 'acme', 'render'],
    ['worker', '--handlers', './handlers.mjs'],
    ['scheduler'],
    ['migrate', '--dir', '.'],
    ['status'],
    ['purge', '--queue', 'reports'],
    ['dashboard', '--port', '39791'],
  ];
  it.each(commands)('%s … exits 1 naming the redacted URL and what to do', async (...command) => {
    const result = await run([...command, '--redis-url', deadRedis]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(`Cannot reach Redis at ${deadRedis.replace('hunter2', '***')}`);
    expect(result.stderr).toMatch(/ECONNREFUSED/);
    expect(result.stderr).toMatch(/--redis-url, FLEET_REDIS_URL/);
    expect(result.stderr).not.toContain('hunter2');
    expect(result.stderr).not.toMatch(/Unhandled error event/);
  });
});

describe('an unreachable registry', () => {
  const commands: string[][] = [
    ['orgs', 'list'],
    ['prewarm'],
    ['provision', '--all'],
    ['enqueue', 'reports', 'acme', 'render', '--engine', 'bullmq'],
    ['migrate', '--dir', '.', '--engine', 'memory'],
    ['worker', '--handlers', './handlers.mjs', '--engine', 'memory'],
  ];
  it.each(commands)('%s … exits 1 naming the redacted URL and what to do', async (...command) => {
    const result = await run([...command, '--registry-url', deadRegistry]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(
      `Cannot reach the registry database at ${deadRegistry.replace('hunter2', '***')}`,
    );
    expect(result.stderr).toMatch(/--registry-url, FLEET_REGISTRY_URL/);
    expect(result.stderr).not.toContain('hunter2');
  });
});

describe('a server that refuses the login', () => {
  const refusal = (what: string) => `Expected ${what} to accept the login, got a refusal (`;

  it.each([
    [
      'Postgres',
      'postgres://fleet_no_such_role:hunter2@127.0.0.1:5432/postgres',
      'role "fleet_no_such_role" does not exist',
    ],
    [
      'MariaDB',
      'mysql://fleet_no_such_user:hunter2@127.0.0.1:3306/mysql',
      "Access denied for user 'fleet_no_such_user'@",
    ],
  ])('orgs list on %s says so, with the reason whole', async (_server, url, reason) => {
    const result = await run(['orgs', 'list', '--registry-url', url]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(`${refusal('the registry database')}${reason}`);
    expect(result.stderr).toContain(
      `check the user, the password and the database in ${url.replace('hunter2', '***')}\n`,
    );
    expect(result.stderr).not.toContain('hunter2');
  });

  it.each([
    [
      'Postgres',
      'postgres://postgres:hunter2@127.0.0.1:5432/fleet_no_such_db',
      'database "fleet_no_such_db" does not exist',
    ],
    ['MariaDB', 'mysql://root@127.0.0.1:3306/fleet_no_such_db', "Unknown database 'fleet_no_such_db'"],
  ])('orgs list on %s names a database that does not exist as such', async (_server, url, reason) => {
    const result = await run(['orgs', 'list', '--registry-url', url]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(`Expected the registry database to exist, got a refusal (${reason}`);
    expect(result.stderr).toContain(
      `create it, or name an existing database in ${url.replace('hunter2', '***')}\n`,
    );
    expect(result.stderr).not.toContain('accept the login');
    expect(result.stderr).not.toContain('hunter2');
  });

  it('enqueue on a Redis with another password says so', async () => {
    const redis = await startPrivateRedis();
    try {
      const admin = new Redis(redis.url);
      await admin.config('SET', 'requirepass', 'the-right-one');
      admin.disconnect();
      const url = redis.url.replace('redis://', 'redis://:hunter2@');
      const result = await run(['enqueue', 'reports', 'acme', 'render', '--redis-url', url]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain(`${refusal('Redis')}WRONGPASS`);
      expect(result.stderr).toContain(`in ${url.replace('hunter2', '***')}\n`);
      expect(result.stderr).not.toContain('hunter2');
    } finally {
      await redis.stop();
    }
  });
});
