import type { ConnectOptions, RawConnection } from './driver.js';
import { databaseKindOf } from './driver.js';
import { connectMysql } from './mysql.js';
import { connectPostgres } from './pg.js';
import { connectSqlite } from './sqlite.js';

/**
 * Opens one raw connection to `url`, the driver chosen by the URL's scheme. Async, so an
 * unsupported scheme rejects the promise (a `ConfigError`) rather than throwing.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  switch (databaseKindOf(url)) {
    case 'postgres':
      return connectPostgres(url, options);
    case 'mysql':
      return connectMysql(url, options);
    case 'sqlite':
      return connectSqlite(url, options);
  }
}

export type { ConnectOptions, DatabaseKind, RawConnection, Row } from './driver.js';
export { databaseKindOf, sqlitePath } from './driver.js';
