/**
 * The `sqlite3` command the demo prints, run while the fleet's SQLite driver keeps
 * opening, writing to and closing the tenant's file (as pools do under the demo's small
 * budget): every read answers, none fails with "database is locked".
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { DEMO_TABLE, sqliteReadCommand } from '../../../src/cli/demo/setup.js';
import { connectSqlite } from '../../../src/tenancy/drivers/sqlite.js';
import { tempDir } from '../../support/services.js';

const run = promisify(execFile);

it('the suggested sqlite3 read never meets "database is locked" while the driver writes', async () => {
  const dir = tempDir('demo-sqlite-reader-');
  const file = join(dir, 'acme.db');
  const url = `sqlite:${file}`;
  try {
    const setup = await connectSqlite(url);
    await setup.query(`CREATE TABLE ${DEMO_TABLE} (id INTEGER PRIMARY KEY, v TEXT)`);
    await setup.close();
    // The driver's files are in WAL mode, so a reader does not wait for a writer's transaction.
    const check = await connectSqlite(url);
    expect(await check.query('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
    await check.close();

    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        const conn = await connectSqlite(url);
        await conn.query(`INSERT INTO ${DEMO_TABLE} (v) VALUES (?)`, ['x']);
        await conn.close();
        written++;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const counts: number[] = [];
    const failures: string[] = [];
    try {
      for (let i = 0; i < 120; i++) {
        try {
          const { stdout } = await run('sh', ['-c', sqliteReadCommand(file)]);
          counts.push(Number(stdout.trim()));
        } catch (err) {
          failures.push(String((err as { stderr?: unknown }).stderr ?? err));
        }
      }
    } finally {
      writing = false;
      await writer;
    }
    expect(failures).toEqual([]);
    expect(written).toBeGreaterThan(0);
    expect([...counts].sort((a, b) => a - b)).toEqual(counts);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
