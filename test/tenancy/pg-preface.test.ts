/**
 * The Postgres driver's preface (`setPreface`): statements the next statement carries
 * ahead of it in the same write, that must all succeed before it runs. Checked against
 * the real server, for a statement sent as a simple Query (no parameters), one sent with
 * parameters (Parse/Bind/Execute/Sync) and a script (`exec`).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/reporting/errors.js';
import { PREFACE } from '../../src/tenancy/drivers/driver.js';
import { connect, type RawConnection } from '../../src/tenancy/drivers/index.js';
import { type PgStatement, PrefacedStatement } from '../../src/tenancy/drivers/pg-preface.js';
import { checkoutPreface } from '../../src/tenancy/pool/connector.js';
import { PG_URL, uniqueName } from '../support/services.js';

const table = uniqueName('fleet_preface');
let admin: RawConnection;

beforeAll(async () => {
  admin = await connect(PG_URL);
  await admin.exec(`CREATE TABLE ${table} (n int NOT NULL)`);
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.close();
});

/** How the statement after the preface is sent, and how such a statement fails or opens a transaction. */
const sends = [
  {
    how: 'a simple query',
    insert: (db: RawConnection) => db.query(`INSERT INTO ${table} VALUES (1)`),
    fail: (db: RawConnection) => db.query('SELEC 1'),
    begin: (db: RawConnection) => db.query('BEGIN'),
  },
  {
    how: 'a statement with parameters',
    insert: (db: RawConnection) => db.query(`INSERT INTO ${table} VALUES ($1)`, [1]),
    fail: (db: RawConnection) => db.query('SELECT $1::int', ['not a number']),
    begin: (db: RawConnection) => db.query('SELECT $1::int', [1]).then(() => db.query('BEGIN')),
  },
  {
    how: 'a script',
    insert: (db: RawConnection) =>
      db.exec(`INSERT INTO ${table} VALUES (1); INSERT INTO ${table} VALUES (1)`),
    fail: (db: RawConnection) => db.exec('SELECT 1; SELEC 2'),
    begin: (db: RawConnection) => db.exec("BEGIN; SELECT set_config('app.x', 'y', true)"),
  },
];

async function rows(): Promise<number> {
  const [row] = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(row?.n);
}

async function setting(db: RawConnection, name: string): Promise<string> {
  const [row] = await db.query<{ value: string }>('SELECT current_setting($1, true) AS value', [name]);
  return row?.value ?? '';
}

describe.each(sends)('a preface before $how', ({ insert, fail, begin }) => {
  it('runs once, before the statement, and the statement returns only its own rows', async () => {
    const db = await connect(PG_URL);
    try {
      db[PREFACE]?.(["SELECT set_config('app.preface', 'ran', false)", 'SELECT 41 AS n']);
      const before = await rows();
      await insert(db);
      expect(await rows()).toBeGreaterThan(before);
      expect(await setting(db, 'app.preface')).toBe('ran');
      // Carried by one statement only: a later reset is not undone by it again.
      await db.query("SELECT set_config('app.preface', 'later', false)");
      await db.query('SELECT 1');
      expect(await setting(db, 'app.preface')).toBe('later');
      db[PREFACE]?.(["SELECT set_config('app.preface', 'again', false)"]);
      expect(await db.query<{ n: number }>('SELECT 7 AS n')).toEqual([{ n: 7 }]);
      expect(await setting(db, 'app.preface')).toBe('again');
      db[PREFACE]?.(["SELECT set_config('app.preface', 'third', false)", '']);
      expect(await db.query<{ n: number }>('SELECT $1::int AS n', [8])).toEqual([{ n: 8 }]);
      expect(await setting(db, 'app.preface')).toBe('third');
    } finally {
      await db.close();
    }
  });

  it('keeps the statement from running when the preface fails, and carries the preface again', async () => {
    const db = await connect(PG_URL);
    try {
      const before = await rows();
      db[PREFACE]?.(["SELECT set_config('app.preface', 'half', false)", 'SELECT 1 / 0']);
      await expect(insert(db)).rejects.toThrow(/division by zero/);
      expect(await rows()).toBe(before);
      // The next statement carries the failing preface again, and is skipped again; the
      // connection is marked for closing (the pool does not lend it again).
      await expect(db.query('SELECT 1')).rejects.toThrow(/division by zero/);
      expect(db.alive).toBe(false);
      expect(db.inFlight).toBe(0);
      db[PREFACE]?.(undefined);
      // The preface's first statement was undone with the rest (one transaction).
      expect(await setting(db, 'app.preface')).toBe('');
      expect(await rows()).toBe(before);
    } finally {
      await db.close();
    }
  });

  it("commits the checkout's search_path switch before the statement: the statement's own failure or rollback keeps it", async () => {
    const db = await connect(PG_URL);
    try {
      await db.query('SET search_path TO somewhere_else');
      db[PREFACE]?.(checkoutPreface('tenant_x'));
      await expect(fail(db)).rejects.toThrow();
      expect(await db.query('SHOW search_path')).toEqual([{ search_path: 'tenant_x, public' }]);

      db[PREFACE]?.(checkoutPreface('tenant_y'));
      await begin(db);
      expect(db.inTransaction()).toBe(true);
      await db.query('SET LOCAL statement_timeout = 1234');
      await db.query('ROLLBACK');
      expect(await db.query('SHOW search_path')).toEqual([{ search_path: 'tenant_y, public' }]);
      expect(db.inTransaction()).toBe(false);
      expect(db.alive).toBe(true);
    } finally {
      await db.close();
    }
  });
});

describe('a failing preface that opened a transaction', () => {
  it('leaves the session in a failed transaction: nothing runs on it until the pool closes it', async () => {
    const db = await connect(PG_URL);
    try {
      const before = await rows();
      db[PREFACE]?.(['BEGIN', 'SELECT 1 / 0', 'COMMIT']);
      await expect(db.query(`INSERT INTO ${table} VALUES ($1)`, [1])).rejects.toThrow(/division by zero/);
      expect(db.inTransaction()).toBe(true);
      await expect(db.query(`INSERT INTO ${table} VALUES (1)`)).rejects.toThrow(/aborted/);
      expect(await rows()).toBe(before);
    } finally {
      await db.close();
    }
  });
});

describe('input node-postgres would refuse', () => {
  it('is refused with a ValidationError before anything is sent', async () => {
    const db = await connect(PG_URL);
    try {
      db[PREFACE]?.(["SELECT set_config('app.preface', 'ran', false)"]);
      const notArray = { 0: 1 } as unknown as unknown[];
      await expect(db.query('SELECT $1::int AS n', notArray)).rejects.toBeInstanceOf(ValidationError);
      await expect(db.query(42 as unknown as string)).rejects.toThrow(/Expected the SQL as a string, got 42/);
      await expect(db.exec(undefined as unknown as string)).rejects.toBeInstanceOf(ValidationError);
      // The preface is still pending, and the connection in step.
      expect(await db.query<{ n: number }>('SELECT $1::int AS n', [5])).toEqual([{ n: 5 }]);
      expect(await setting(db, 'app.preface')).toBe('ran');
    } finally {
      await db.close();
    }
  });
});

describe('a statement node-postgres refuses to send, behind a preface already written', () => {
  it("fails with node-postgres' error once the server has answered, and the connection stays in step", async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const failed = await new Promise<unknown>((resolve) => {
        const notArray = { 0: 1 } as unknown as unknown[];
        const query = new pg.Query('SELECT $1::int AS n', notArray, (err) => resolve(err));
        const preface = ["SELECT set_config('app.preface', 'ran', false)"];
        client.query(new PrefacedStatement(preface, query as unknown as PgStatement, () => {}));
      });
      expect(String(failed)).toMatch(/values must be an array/);
      const { rows } = await client.query("SELECT current_setting('app.preface', true) AS v");
      expect(rows).toEqual([{ v: 'ran' }]);
    } finally {
      await client.end();
    }
  });
});

describe('with a query_timeout in the connection URL', () => {
  it('leaves no timer behind once scripts and prefaced statements have finished', async () => {
    const url = new URL(PG_URL);
    url.searchParams.set('query_timeout', '600000');
    const db = await connect(url.toString());
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    try {
      await db.query('SELECT 1');
      const before = timers();
      for (let i = 0; i < 5; i++) {
        await db.exec('SELECT 1; SELECT 2');
        db[PREFACE]?.(["SELECT set_config('app.preface', 'ran', false)"]);
        await db.query('SELECT 1');
        db[PREFACE]?.(['SELECT 1 / 0']);
        await expect(db.query('SELECT 1')).rejects.toThrow(/division by zero/);
        db[PREFACE]?.(undefined);
      }
      // Other timers of the process may end meanwhile; a leak would add one per statement.
      expect(timers()).toBeLessThanOrEqual(before);
    } finally {
      await db.close();
    }
  });
});
