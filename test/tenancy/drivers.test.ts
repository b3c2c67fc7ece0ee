/**
 * Each driver against its real server: its own placeholders, scripts, ping, idempotent
 * close, idle errors, and failed connects whose errors never show the URL's password.
 */
import { once } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError, ConfigError } from '../../src/reporting/errors.js';
import { connect, databaseKindOf, type RawConnection } from '../../src/tenancy/drivers/index.js';
import { splitSqlScript } from '../../src/tenancy/drivers/mysql.js';
import { closedPort } from '../support/net.js';
import { MYSQL_URL, PG_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';

const PASSWORD = 'pw-s3cret-Zq9';

/** A port nothing listens on (bound once, then released). */

/** A server that accepts connections and never says a word, so a client's handshake hangs. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

async function connectError(url: string): Promise<Error> {
  const err = await connect(url, { connectTimeoutMs: 300 }).then(
    async (conn) => {
      await conn.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

function expectNoPassword(err: Error): void {
  for (const text of [err.message, String(err.stack), String(err), inspect(err, { depth: 5 })]) {
    expect(text).not.toContain(PASSWORD);
  }
}

function urlWithPassword(scheme: string, port: number): string {
  return `${scheme}://app:${PASSWORD}@127.0.0.1:${port}/fleet`;
}

interface ServerCase {
  scheme: 'postgres' | 'mysql';
  adminUrl: string;
  placeholders: [string, string];
  /** A statement that makes the server end another session. */
  kill(admin: RawConnection, victim: RawConnection): Promise<void>;
}

const serverCases: ServerCase[] = [
  {
    scheme: 'postgres',
    adminUrl: PG_URL,
    placeholders: ['$1', '$2'],
    async kill(admin, victim) {
      const [row] = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await admin.query('SELECT pg_terminate_backend($1)', [row!.pid]);
    },
  },
  {
    scheme: 'mysql',
    adminUrl: MYSQL_URL,
    placeholders: ['?', '?'],
    async kill(admin, victim) {
      const [row] = await victim.query<{ id: number }>('SELECT CONNECTION_ID() AS id');
      await admin.query(`KILL ${Number(row!.id)}`);
    },
  },
];

describe.each(serverCases)('$scheme driver', (c) => {
  let conn: RawConnection;
  const table = uniqueName('fleet_drv');

  beforeAll(async () => {
    conn = await connect(c.adminUrl);
  });

  afterAll(async () => {
    await conn.query(`DROP TABLE IF EXISTS ${table}`);
    await conn.close();
  });

  it('runs a query with its own placeholders and returns rows', async () => {
    expect(conn.kind).toBe(c.scheme);
    const [a, b] = c.placeholders;
    const rows = await conn.query(`SELECT ${a} AS word, ${b} AS n`, ['hello', 41]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.word).toBe('hello');
    expect(Number(rows[0]!.n)).toBe(41);
  });

  it('runs a script of several statements', async () => {
    await conn.exec(`
      CREATE TABLE ${table} (id INT PRIMARY KEY, note VARCHAR(40));
      -- a comment; with a semicolon
      INSERT INTO ${table} VALUES (1, 'one; still one');
      INSERT INTO ${table} VALUES (2, 'two');
    `);
    const rows = await conn.query(`SELECT id, note FROM ${table} ORDER BY id`);
    expect(rows.map((r) => [Number(r.id), r.note])).toEqual([
      [1, 'one; still one'],
      [2, 'two'],
    ]);
    expect(await conn.query(`DELETE FROM ${table} WHERE id = 2`)).toEqual([]);
  });

  it('rejects a script at its first failing statement and stays usable; rejects one killed mid-way, or sent to a killed session', async () => {
    const own = await connect(c.adminUrl);
    const failed = await own
      .exec('SELECT 1; SELECT no_such_column_x FROM (SELECT 1 AS n) AS s; SELECT 2')
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/no_such_column_x/);
    expect(own.alive).toBe(true);
    expect(own.inFlight).toBe(0);
    expect((await own.query('SELECT 3 AS n')).map((row) => Number(row.n))).toEqual([3]);
    // Killed while the script runs: it rejects at once, and the connection is known dead.
    const postgres = c.scheme === 'postgres';
    const [{ id }] = (await own.query(
      postgres ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id',
    )) as [{ id: number }];
    const running = own
      .exec(`${postgres ? 'SELECT pg_sleep(30)' : 'SELECT SLEEP(30)'}; SELECT 1`)
      .catch((error: unknown) => error);
    await until(async () => own.inFlight === 1, 'the script sent');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await conn.query(
      postgres ? 'SELECT pg_terminate_backend($1)' : `KILL ${Number(id)}`,
      postgres ? [id] : [],
    );
    expect(await running).toBeInstanceOf(Error);
    expect(own.alive).toBe(false);
    await expect(own.exec('SELECT 1; SELECT 2')).rejects.toBeInstanceOf(Error);
    expect(own.inFlight).toBe(0);
    await own.close();
  });

  it('pings, closes idempotently and refuses queries after close', async () => {
    const own = await connect(c.adminUrl);
    await own.ping();
    expect(own.alive).toBe(true);
    await Promise.all([own.close(), own.close()]);
    await own.close();
    expect(own.alive).toBe(false);
    await expect(own.query('SELECT 1')).rejects.toBeInstanceOf(ClosedError);
  });

  it('knows when it is inside a transaction and counts statements in flight', async () => {
    const own = await connect(c.adminUrl);
    try {
      expect(own.inTransaction()).toBe(false);
      await own.query(c.scheme === 'mysql' ? 'START TRANSACTION' : 'BEGIN');
      expect(own.inTransaction()).toBe(true);
      await own.query('ROLLBACK');
      expect(own.inTransaction()).toBe(false);
      const first = own.query('SELECT 1');
      const second = own.query('SELECT 2');
      expect(own.inFlight).toBe(2);
      await Promise.all([first, second]);
      expect(own.inFlight).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('close() stops a statement still running and ends the session on the server', async () => {
    const own = await connect(c.adminUrl);
    const [row] = await own.query<{ id: number }>(
      c.scheme === 'mysql' ? 'SELECT CONNECTION_ID() AS id' : 'SELECT pg_backend_pid() AS id',
    );
    const sleeping = own.query(c.scheme === 'mysql' ? 'SELECT SLEEP(30)' : 'SELECT pg_sleep(30)');
    const queued = own.query('SELECT 1');
    const outcome = Promise.allSettled([sleeping, queued]);
    if (c.scheme === 'mysql') {
      // MySQL needs another session to stop it: the driver names the statement to run there.
      expect(own.cancelStatement).toBe(`KILL QUERY ${row!.id}`);
      await until(
        async () =>
          (
            await conn.query(
              "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'",
              [row!.id],
            )
          ).length === 1,
        'the statement running',
      );
      await conn.query(own.cancelStatement as string);
    }
    await own.close();
    const [slept, next] = await outcome;
    expect(slept.status === 'rejected' && slept.reason).toBeInstanceOf(ClosedError);
    // What was queued behind it was never sent.
    expect(next.status === 'rejected' && next.reason).toBeInstanceOf(ClosedError);
    // The server closes the socket, then drops the session from its list a moment later
    // (MariaDB's thread ends after its socket): gone well within the statement's 30 s.
    const alive = () =>
      conn.query(
        c.scheme === 'mysql'
          ? 'SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?'
          : 'SELECT pid FROM pg_stat_activity WHERE pid = $1',
        [row!.id],
      );
    await until(async () => (await alive()).length === 0, 'the session to end on the server', {
      timeoutMs: 5_000,
      intervalMs: 20,
    });
  });

  it('reports an idle connection killed by the server through onError, without crashing', async () => {
    const victim = await connect(c.adminUrl);
    const errored = new Promise<Error>((resolve) => victim.onError(resolve));
    await c.kill(conn, victim);
    const err = await errored;
    expect(err).toBeInstanceOf(Error);
    expect(victim.alive).toBe(false);
    await victim.close();
  });

  it('a refused connect fails with an error that does not show the password', async () => {
    const err = await connectError(urlWithPassword(c.scheme, await closedPort()));
    expect(err.message).toMatch(/ECONNREFUSED/);
    expectNoPassword(err);
  });

  it('a connect that hangs times out with an error that does not show the password', async () => {
    const server = await silentServer();
    try {
      const err = await connectError(urlWithPassword(c.scheme, server.port));
      expect(err.message).toMatch(/time/i);
      expectNoPassword(err);
    } finally {
      await server.close();
    }
  });
});

describe('sqlite driver', () => {
  const dir = tempDir('tenant-fleet-drivers-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the file, runs queries with ? placeholders and scripts, pings and closes idempotently', async () => {
    const conn = await connect(`sqlite:${join(dir, 'nested', 'a.db')}`);
    expect(conn.kind).toBe('sqlite');
    await conn.exec(`
      CREATE TABLE t (id INTEGER PRIMARY KEY, flag INTEGER, at TEXT);
      INSERT INTO t VALUES (1, 0, 'x; y');
    `);
    await conn.query('INSERT INTO t VALUES (?, ?, ?)', [2, true, new Date(0)]);
    expect(await conn.query('SELECT id, flag, at FROM t WHERE id >= ? ORDER BY id', [1])).toEqual([
      { id: 1, flag: 0, at: 'x; y' },
      { id: 2, flag: 1, at: '1970-01-01T00:00:00.000Z' },
    ]);
    expect(await conn.query<{ journal_mode: string }>('PRAGMA journal_mode')).toEqual([
      { journal_mode: 'wal' },
    ]);
    await conn.ping();
    await Promise.all([conn.close(), conn.close()]);
    expect(conn.alive).toBe(false);
    await expect(conn.query('SELECT 1')).rejects.toBeInstanceOf(ClosedError);
  });

  it('knows when it is inside a transaction', async () => {
    const conn = await connect(`sqlite:${join(dir, 'tx.db')}`);
    try {
      expect(conn.inTransaction()).toBe(false);
      await conn.query('BEGIN');
      expect(conn.inTransaction()).toBe(true);
      await conn.query('ROLLBACK');
      expect(conn.inTransaction()).toBe(false);
    } finally {
      await conn.close();
    }
  });

  it('waits for another connection of the same process to commit instead of blocking the thread', async () => {
    const url = `sqlite:${join(dir, 'locks.db')}`;
    const a = await connect(url);
    const b = await connect(url);
    try {
      await a.exec('CREATE TABLE t (n INTEGER)');
      const order: string[] = [];
      await a.query('BEGIN IMMEDIATE');
      const waiting = b.query('INSERT INTO t VALUES (2)').then(() => order.push('b inserted'));
      // `a` can still run while `b` waits for the lock: the thread is not blocked.
      await a.query('INSERT INTO t VALUES (1)');
      order.push('a committing');
      await a.query('COMMIT');
      await waiting;
      expect(order).toEqual(['a committing', 'b inserted']);
      expect((await a.query('SELECT n FROM t ORDER BY n')).map((r) => r.n)).toEqual([1, 2]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('fails to open a path that is a folder', async () => {
    const folder = join(dir, 'folder.db');
    mkdirSync(folder);
    await expect(connect(`sqlite:${folder}`)).rejects.toThrow();
  });
});

describe('connection URLs', () => {
  it('picks the database kind from the scheme', () => {
    expect(databaseKindOf('postgres://a@b/c')).toBe('postgres');
    expect(databaseKindOf('postgresql://a@b/c')).toBe('postgres');
    expect(databaseKindOf('mysql://a@b/c')).toBe('mysql');
    expect(databaseKindOf('mariadb://a@b/c')).toBe('mysql');
    expect(databaseKindOf('sqlite:/tmp/a.db')).toBe('sqlite');
  });

  it.each([`redis://app:${PASSWORD}@127.0.0.1:6379`, `//app:${PASSWORD}@db/x`, 'no scheme at all'])(
    'rejects %s with a ConfigError that does not show the password',
    async (url) => {
      const err = await connect(url).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expectNoPassword(err as Error);
    },
  );

  it('splits a MySQL script on statement ends only', () => {
    expect(splitSqlScript('SELECT \'a;b\'; -- c;\nSELECT `x;y` /* ; */; SELECT "q\\";"')).toEqual([
      "SELECT 'a;b'",
      'SELECT `x;y`',
      'SELECT "q\\";"',
    ]);
  });
});
