/**
 * What the commands tell an operator: a repeated --job-id is reported as a no-op,
 * prewarm names each tenant it could not warm, with the cause, and a listing whose
 * reader went away (`| head`) ends quietly.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deletePrefix } from '../queue/engines.js';
import { closedPort } from '../support/net.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { runCli, startCli } from './support.js';

let dir: string;
let env: Record<string, string>;
const prefix = uniqueName('fleetops');

beforeAll(async () => {
  dir = tempDir('tenant-fleet-operator-');
  env = {
    FLEET_REGISTRY_URL: `sqlite:${join(dir, 'registry.db')}`,
    FLEET_REDIS_URL: REDIS_URL,
    FLEET_PREFIX: prefix,
    FLEET_LOG_LEVEL: 'error',
  };
  const add = await runCli(
    ['orgs', 'add', 'acme', '--mode', 'database', '--database-url', `sqlite:${join(dir, 'acme.db')}`],
    { env },
  );
  expect(add.code, add.stderr).toBe(0);
});

afterAll(async () => {
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('enqueue --job-id', () => {
  it('says when the id was already there and nothing was enqueued', async () => {
    const args = ['enqueue', 'reports', 'acme', 'render', '--job-id', 'once', '--delay', '600000'];
    const first = await runCli(args, { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe('once');
    expect(first.stderr).not.toMatch(/nothing enqueued/);
    const again = await runCli(args, { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('once');
    expect(again.stderr).toMatch(/job once was already in reports for acme \(delayed\): nothing enqueued/);
  });
});

describe('prewarm', () => {
  it('names each tenant that failed, with the cause', async () => {
    const add = await runCli(
      ['orgs', 'add', 'broken', '--mode', 'database', '--database-url', 'env://TENANT_FLEET_NOT_SET'],
      { env },
    );
    expect(add.code, add.stderr).toBe(0);
    const text = await runCli(['prewarm'], { env });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^failed\tbroken\t.*TENANT_FLEET_NOT_SET/m);
    expect(text.stdout).toMatch(/2 active tenants: 1 warmed, 1 failed/);
    const json = await runCli(['prewarm', '--json'], { env });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as {
      failed: number;
      failures: { tenant: string; error: string }[];
    };
    expect(report.failed).toBe(1);
    expect(report.failures).toEqual([
      { tenant: 'broken', error: expect.stringMatching(/TENANT_FLEET_NOT_SET/) },
    ]);
  });
});

describe('orgs add --provision whose database server does not answer', () => {
  it('says the tenant is registered and how to finish or undo it; provision then names the tenant and server', async () => {
    const port = await closedPort();
    const url = `postgres://postgres:hunter2@127.0.0.1:${port}/fleet_unprovisioned`;
    const add = await runCli(
      ['orgs', 'add', 'later', '--mode', 'database', '--database-url', url, '--provision'],
      {
        env,
      },
    );
    expect(add.code).toBe(1);
    expect(add.stderr).toMatch(
      /tenant later is registered but its database was not created \(.*ECONNREFUSED.*\): run `tenant-fleet provision later` once its database server answers, or `tenant-fleet orgs remove later`/,
    );
    expect(add.stderr).not.toContain('hunter2');
    // provision tries every tenant named: the one that failed is reported, the others done.
    const ok = await runCli(
      ['orgs', 'add', 'fine', '--mode', 'database', '--database-url', `sqlite:${dir}/fine.db`],
      {
        env,
      },
    );
    expect(ok.code, ok.stderr).toBe(0);
    const provision = await runCli(['provision', 'later', 'fine'], { env });
    expect(provision.code).toBe(1);
    expect(provision.stdout).toContain(
      `failed\tlater\tExpected tenant "later"'s database at 127.0.0.1:${port} to accept a connection, got connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
    expect(provision.stdout).toMatch(/^fine\tdatabase\tsqlite\t.*created$/m);
    expect(provision.stderr).toContain('error: 1 of 2 tenants were not provisioned');
    expect(provision.stdout + provision.stderr).not.toContain('hunter2');
    expect((await runCli(['orgs', 'remove', 'fine'], { env })).code).toBe(0);
    const removed = await runCli(['orgs', 'remove', 'later'], { env });
    expect(removed.code, removed.stderr).toBe(0);
  });
});

describe('a command writing into a pipe closed early', () => {
  // The reader is gone before the first line is written.
  const intoClosedPipe = async (args: string[]) => {
    const cli = startCli(args, { env });
    cli.child.stdout!.destroy();
    return { code: await cli.exit, stderr: cli.stderr() };
  };

  it('ends orgs list quietly with 0, as `tenant-fleet orgs list | head` expects', async () => {
    const { code, stderr } = await intoClosedPipe(['orgs', 'list']);
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
  });

  it('keeps the exit code of a command that failed: prewarm with a broken tenant', async () => {
    const add = await runCli(
      ['orgs', 'add', 'broken-too', '--mode', 'database', '--database-url', 'env://TENANT_FLEET_NOT_SET'],
      { env },
    );
    expect(add.code, add.stderr).toBe(0);
    const { code, stderr } = await intoClosedPipe(['prewarm']);
    expect(code).toBe(1);
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
  });
});
