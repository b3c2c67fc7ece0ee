/**
 * No password reaches the terminal: the built CLI adds orgs whose database URLs carry a
 * credential in every form the drivers accept, then lists them as text and as JSON, at
 * trace level so every log line is written too. Neither standard output nor standard
 * error may hold any piece of a secret; the hosts and users must still show.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leakedPieces, SECRET_URL_CASES } from '../reporting/secret-urls.js';
import { tempDir } from '../support/services.js';
import { runCli } from './support.js';

let dir: string;
let env: Record<string, string>;

beforeAll(() => {
  dir = tempDir('tenant-fleet-cli-redaction-');
  env = { FLEET_REGISTRY_URL: `sqlite:${join(dir, 'registry.db')}`, FLEET_LOG_LEVEL: 'trace' };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const slugOf = (i: number) => `t${String(i).padStart(2, '0')}`;

function expectNoSecret(output: string, label: string): void {
  for (const { secret, name } of SECRET_URL_CASES) {
    expect(leakedPieces(output, secret), `${label}: ${name}`).toEqual([]);
  }
}

describe('orgs commands with credentials in the database URL', () => {
  it('orgs add, orgs list and orgs list --json print no piece of any password', async () => {
    for (const [i, { url }] of SECRET_URL_CASES.entries()) {
      const json = i % 2 === 1;
      const run = await runCli(
        ['orgs', 'add', slugOf(i), '--mode', 'database', '--database-url', url, ...(json ? ['--json'] : [])],
        { env },
      );
      expect(run.code, run.stderr).toBe(0);
      expectNoSecret(run.stdout + run.stderr, `orgs add ${slugOf(i)}`);
      expect(run.stdout).toContain('127.0.0.1');
    }

    const list = await runCli(['orgs', 'list'], { env });
    expect(list.code, list.stderr).toBe(0);
    expectNoSecret(list.stdout + list.stderr, 'orgs list');
    expect(list.stdout.trim().split('\n')).toHaveLength(SECRET_URL_CASES.length);

    const listJson = await runCli(['orgs', 'list', '--json'], { env });
    expect(listJson.code, listJson.stderr).toBe(0);
    expectNoSecret(listJson.stdout + listJson.stderr, 'orgs list --json');
    const orgs = listJson.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { slug: string; databaseUrl: string });
    expect(orgs).toHaveLength(SECRET_URL_CASES.length);
    for (const [i, { visible }] of SECRET_URL_CASES.entries()) {
      const org = orgs.find((o) => o.slug === slugOf(i))!;
      for (const part of visible) expect(org.databaseUrl).toContain(part);
    }

    const update = await runCli(
      ['orgs', 'update', slugOf(0), '--database-url', SECRET_URL_CASES[1]!.url, '--json'],
      { env },
    );
    expect(update.code, update.stderr).toBe(0);
    expectNoSecret(update.stdout + update.stderr, 'orgs update');
  });

  it('a usage or configuration error quoting a URL does not echo its password', async () => {
    for (const { url } of SECRET_URL_CASES) {
      const badFlag = await runCli(['orgs', 'list', '--limit', url], { env });
      expect(badFlag.code).toBe(2);
      expect(badFlag.stderr).toMatch(/--limit/);
      expectNoSecret(badFlag.stdout + badFlag.stderr, 'bad --limit');
    }
    const badRegistry = await runCli(['orgs', 'list'], {
      env: { ...env, FLEET_REGISTRY_URL: 'ftp://rel@srv:Zx7PwAz@127.0.0.1/appdb' },
    });
    expect(badRegistry.code).toBe(2);
    expectNoSecret(badRegistry.stdout + badRegistry.stderr, 'bad registry URL');
  });
});
