/**
 * Every command's flags and arguments with bad values, as the built CLI sees them: one
 * row per input, with the exit code it must end with (2 for a bad flag, argument or
 * configuration; 1 for a well-formed slug naming no tenant) and a message fragment that
 * names the flag (or field) with what was expected and what was got. After each row
 * nothing was written: the registry's rows are unchanged and no Redis key exists under
 * the suite's own prefix.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/tenancy/drivers/index.js';
import { runCli } from '../cli/support.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';

interface Row {
  /** The arguments; `$DIR` becomes the suite's temporary folder. */
  readonly argv: readonly string[];
  readonly code: 1 | 2;
  /** Matched against standard error. */
  readonly message: RegExp;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
}

const int = (flag: string, min: number, got: string) =>
  new RegExp(
    `option '${flag} <[a-z]+>' argument '${got}' is invalid\\. expected an integer ≥ ${min}, got "${got}"`,
  );
const config = (key: string, source: string, expected: string, got: string) =>
  new RegExp(`\`${key}\` \\(from ${source}\\): .*${expected}.*, got ${got}`);
const SLUG = /Expected `slug` to be 1–63 characters .*, got "Bad Slug"/;
const UNKNOWN = /Expected a registered tenant, got unknown slug "nobody"/;

const ROWS: Record<string, readonly Row[]> = {
  'global flags and environment': [
    {
      argv: ['--budget', '0', 'orgs', 'list'],
      code: 2,
      message: config('budget', 'flag --budget', '>=1', '0'),
    },
    {
      argv: ['--budget', 'abc', 'orgs', 'list'],
      code: 2,
      message: config('budget', 'flag --budget', 'expected number', '"abc"'),
    },
    {
      argv: ['--server-budget', 'lots', 'orgs', 'list'],
      code: 2,
      message: config('fleetBudget', 'flag --server-budget', 'expected object', '"lots"'),
    },
    {
      argv: ['--server-budget', 'pg-a:5432=0', 'orgs', 'list'],
      code: 2,
      message: config('fleetBudget.perServer.pg-a:5432', 'flag --server-budget', '>=1', '0'),
    },
    {
      argv: ['orgs', 'list'],
      env: { FLEET_SERVER_BUDGET: 'pg-a=5' },
      code: 2,
      message: config(
        'fleetBudget.perServer.pg-a',
        'env FLEET_SERVER_BUDGET',
        'Invalid key in record',
        '"pg-a"',
      ),
    },
    {
      argv: ['--engine', 'kafka', 'orgs', 'list'],
      code: 2,
      message: config('engine', 'flag --engine', 'expected one of "memory"\\|"bullmq"', '"kafka"'),
    },
    {
      argv: ['--redis-url', 'http://x', 'orgs', 'list'],
      code: 2,
      message: config('redisUrl', 'flag --redis-url', 'expected a redis:// or rediss:// URL', '"http://x"'),
    },
    {
      argv: ['--prefix', 'bad prefix!', 'orgs', 'list'],
      code: 2,
      message: config('prefix', 'flag --prefix', 'expected 1–40 letters', '"bad prefix!"'),
    },
    {
      argv: ['--log-level', 'loud', 'orgs', 'list'],
      code: 2,
      message: config('logLevel', 'flag --log-level', 'expected one of "fatal"', '"loud"'),
    },
    {
      argv: ['--registry-url', 'ftp://x', 'orgs', 'list'],
      code: 2,
      message: /Expected a database URL starting with postgres:\/\/.*, got scheme "ftp:"/,
    },
    {
      argv: ['--config', '/nonexistent.json', 'orgs', 'list'],
      code: 2,
      message: /Expected --config to name an existing file, got "\/nonexistent.json"/,
    },
    {
      argv: ['orgs', 'list'],
      env: { FLEET_MAX_CACHED_POOLS: '-1' },
      code: 2,
      message: config('maxCachedPools', 'env FLEET_MAX_CACHED_POOLS', '>=1', '-1'),
    },
    {
      argv: ['orgs', 'list'],
      env: { FLEET_ACQUIRE_TIMEOUT_MS: 'abc' },
      code: 2,
      message: config('acquireTimeoutMs', 'env FLEET_ACQUIRE_TIMEOUT_MS', 'expected number', '"abc"'),
    },
    { argv: ['orgs', 'list', '--bogus'], code: 2, message: /unknown option '--bogus'/ },
  ],
  'orgs add': [
    { argv: ['orgs', 'add', 'x1', '--weight', '0'], code: 2, message: int('--weight', 1, '0') },
    { argv: ['orgs', 'add', 'x1', '--weight', '1.5'], code: 2, message: int('--weight', 1, '1.5') },
    {
      argv: ['orgs', 'add', 'x1', '--weight', '9007199254740993'],
      code: 2,
      message: int('--weight', 1, '9007199254740993'),
    },
    {
      argv: ['orgs', 'add', 'x1', '--max-concurrency', '0'],
      code: 2,
      message: int('--max-concurrency', 1, '0'),
    },
    {
      argv: ['orgs', 'add', 'x1', '--max-connections', '-1'],
      code: 2,
      message: int('--max-connections', 1, '-1'),
    },
    {
      argv: ['orgs', 'add', 'x1', '--mode', 'cloud'],
      code: 2,
      message:
        /option '--mode <mode>' argument 'cloud' is invalid\. expected one of schema, database, got "cloud"/,
    },
    {
      argv: ['orgs', 'add', 'Bad Slug', '--mode', 'database', '--database-url', 'sqlite:$DIR/x.db'],
      code: 2,
      message: SLUG,
    },
    {
      argv: ['orgs', 'add', 'x2', '--mode', 'database'],
      code: 2,
      message: /Expected `databaseUrl` .* in database mode, got none/,
    },
    {
      argv: ['orgs', 'add', 'x3', '--mode', 'database', '--database-url', ' '],
      code: 2,
      message: /Expected `databaseUrl` .* in database mode, got " "/,
    },
    {
      argv: ['orgs', 'add', 'x3b'],
      code: 2,
      message:
        /Expected --mode database and --database-url <url> on a sqlite registry \(schema mode, the default, needs a Postgres registry\), got neither/,
    },
    {
      argv: ['orgs', 'add', 'x4', '--mode', 'schema', '--database-url', 'postgres://h/db'],
      code: 2,
      message: /Expected no `databaseUrl` in schema mode .*, got one/,
    },
    {
      argv: ['orgs', 'add', 'x5', '--schema', 'Bad-Name'],
      code: 2,
      message: /Expected `schemaName` to match .*, got "Bad-Name"/,
    },
    {
      argv: ['orgs', 'add', 'acme', '--mode', 'database', '--database-url', 'sqlite:$DIR/y.db'],
      code: 2,
      message: /Expected a new slug, got "acme" which is already registered/,
    },
    { argv: ['orgs', 'add'], code: 2, message: /missing required argument 'slug'/ },
  ],
  'orgs list': [
    { argv: ['orgs', 'list', '--limit', '0'], code: 2, message: int('--limit', 1, '0') },
    { argv: ['orgs', 'list', '--limit', 'x'], code: 2, message: int('--limit', 1, 'x') },
  ],
  'orgs update': [
    { argv: ['orgs', 'update', 'acme', '--weight', '0'], code: 2, message: int('--weight', 1, '0') },
    {
      argv: ['orgs', 'update', 'acme', '--max-concurrency', 'zero'],
      code: 2,
      message: int('--max-concurrency', 1, 'zero'),
    },
    {
      argv: ['orgs', 'update', 'acme', '--max-connections', '-5'],
      code: 2,
      message: int('--max-connections', 1, '-5'),
    },
    {
      argv: ['orgs', 'update', 'acme', '--database-url', ''],
      code: 2,
      message: /Expected `databaseUrl` .* in database mode, got ""/,
    },
    { argv: ['orgs', 'update', 'Bad Slug', '--weight', '2'], code: 2, message: SLUG },
    { argv: ['orgs', 'update', 'nobody', '--weight', '2'], code: 1, message: UNKNOWN },
  ],
  'orgs deactivate': [
    { argv: ['orgs', 'deactivate', 'Bad Slug'], code: 2, message: SLUG },
    { argv: ['orgs', 'deactivate', 'nobody'], code: 1, message: UNKNOWN },
  ],
  provision: [
    { argv: ['provision'], code: 2, message: /give tenant slugs or --all/ },
    { argv: ['provision', 'Bad Slug'], code: 2, message: SLUG },
    { argv: ['provision', 'nobody'], code: 1, message: UNKNOWN },
  ],
  migrate: [
    { argv: ['migrate'], code: 2, message: /required option '--dir <path>' not specified/ },
    {
      argv: ['migrate', '--dirs', 'm'],
      code: 2,
      message: /unknown option '--dirs'\n\(Did you mean --dir\?\)/,
    },
    {
      argv: ['migrate', '--dir', '$DIR/migrations', '--concurrency', '0'],
      code: 2,
      message: int('--concurrency', 1, '0'),
    },
    {
      argv: ['migrate', '--dir', '$DIR/migrations', '--stall-timeout', '0'],
      code: 2,
      message: int('--stall-timeout', 1, '0'),
    },
    {
      argv: ['migrate', '--dir', '$DIR/none'],
      code: 2,
      message: /Expected `dir` to be a directory of numbered \.sql files, got ".*none"/,
    },
  ],
  prewarm: [{ argv: ['prewarm', '--bogus'], code: 2, message: /unknown option '--bogus'/ }],
  enqueue: [
    {
      argv: ['enqueue', 'reports', 'acme', 'render', '--data', '{bad'],
      code: 2,
      message: /option '--data <json>' argument '\{bad' is invalid\. expected JSON, got "\{bad"/,
    },
    {
      argv: ['enqueue', 'reports', 'acme', 'render', '--delay', '-1'],
      code: 2,
      message: int('--delay', 0, '-1'),
    },
    {
      argv: ['enqueue', 'reports', 'acme', 'render', '--priority', '0'],
      code: 2,
      message: int('--priority', 1, '0'),
    },
    {
      argv: ['enqueue', 'reports', 'acme', 'render', '--attempts', '0'],
      code: 2,
      message: int('--attempts', 1, '0'),
    },
    {
      argv: ['enqueue', 'bad:queue', 'acme', 'render'],
      code: 2,
      message: /Expected `queue` to match .*, got "bad:queue"/,
    },
    { argv: ['enqueue', 'reports', 'acme'], code: 2, message: /missing required argument 'name'/ },
    { argv: ['enqueue', 'reports', 'nobody', 'render'], code: 1, message: UNKNOWN },
  ],
  worker: [
    { argv: ['worker'], code: 2, message: /required option '--handlers <path>' not specified/ },
    // A mistyped required option is named as unknown, with the one meant, not as missing.
    {
      argv: ['worker', '--handler', 'h.js'],
      code: 2,
      message: /unknown option '--handler'\n\(Did you mean --handlers\?\)/,
    },
    {
      argv: ['worker', '--handlers', 'h.js', '--concurrency', '0'],
      code: 2,
      message: int('--concurrency', 1, '0'),
    },
    {
      argv: ['worker', '--handlers', 'h.js', '--per-tenant-concurrency', '0'],
      code: 2,
      message: int('--per-tenant-concurrency', 1, '0'),
    },
    {
      argv: ['worker', '--handlers', 'h.js', '--jobs-per-turn', '0'],
      code: 2,
      message: int('--jobs-per-turn', 1, '0'),
    },
    {
      argv: ['worker', '--handlers', 'h.js', '--startup', 'later'],
      code: 2,
      message:
        /option '--startup <mode>' argument 'later' is invalid\. expected one of blocking, background, got "later"/,
    },
    {
      argv: ['worker', '--handlers', '$DIR/none.js'],
      code: 2,
      message: /Expected `handlers` to name an existing file, got ".*none\.js"/,
    },
  ],
  scheduler: [{ argv: ['scheduler', '--page-size', '0'], code: 2, message: int('--page-size', 1, '0') }],
  demo: [
    {
      argv: ['demo', '--dir', '$DIR/demo', '--stats-interval', '5'],
      code: 2,
      message: int('--stats-interval', 100, '5'),
    },
    {
      argv: ['demo', '--dir', '$DIR/demo', '--cron', 'not a cron'],
      code: 2,
      message:
        /option '--cron <pattern>' argument 'not a cron' is invalid\. expected a cron pattern of 5 fields, or 6 with seconds first, got "not a cron"/,
    },
  ],
};

let dir: string;
let registryUrl: string;
let prefix: string;
let env: Record<string, string>;
let redis: Redis;

/** Every org row, in order: what "nothing was written" compares. */
async function registryRows(): Promise<unknown[]> {
  const db = await connect(registryUrl);
  try {
    return await db.query('SELECT * FROM fleet_orgs ORDER BY slug');
  } finally {
    await db.close();
  }
}

async function redisKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

beforeAll(async () => {
  dir = tempDir('tenant-fleet-validation-');
  mkdirSync(join(dir, 'migrations'));
  registryUrl = `sqlite:${join(dir, 'registry.db')}`;
  prefix = uniqueName('fleetval');
  env = {
    FLEET_REGISTRY_URL: registryUrl,
    FLEET_ENGINE: 'bullmq',
    FLEET_REDIS_URL: REDIS_URL,
    FLEET_PREFIX: prefix,
    FLEET_LOG_LEVEL: 'warn',
  };
  redis = new Redis(REDIS_URL);
  const added = await runCli(
    ['orgs', 'add', 'acme', '--mode', 'database', '--database-url', `sqlite:${join(dir, 'acme.db')}`],
    { env },
  );
  expect(added.code, added.stderr).toBe(0);
});

afterAll(async () => {
  await redis?.quit();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(Object.entries(ROWS))('%s', (_command, rows) => {
  it.each(rows.map((row) => [row.argv.join(' '), row] as const))('%s', async (_label, row) => {
    const before = await registryRows();
    const argv = row.argv.map((arg) => arg.replaceAll('$DIR', dir));
    const run = await runCli(argv, { env: { ...env, ...row.env }, cwd: dir });
    expect(run.code, run.stderr).toBe(row.code);
    expect(run.stderr).toMatch(row.message);
    expect(run.stdout).toBe('');
    expect(await registryRows()).toEqual(before);
    expect(await redisKeys()).toEqual([]);
    expect(existsSync(join(dir, 'demo'))).toBe(false);
  });
});
