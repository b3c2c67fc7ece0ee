import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, describe, ValidationError } from '../reporting/errors.js';

/** One numbered SQL file of a migrations directory: `001_create_reports.sql`. */
export interface Migration {
  /** The number the file name starts with; migrations run in this order. */
  version: number;
  /** The rest of the file name: `create_reports`. */
  name: string;
  /** The whole script; several statements separated by `;` are fine. */
  sql: string;
  /** sha256 of the script, hex, so a run can tell when an applied file was edited. */
  checksum: string;
  /** The file it was read from, as named (`001_create_reports.sql`); set by {@link loadMigrations}. */
  file?: string;
}

const FILE_NAME = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;

/**
 * Reads the numbered `.sql` files of `dir` in version order. Files not ending in `.sql`
 * are ignored; a `.sql` file without a number, or two files with one number, are a
 * {@link ValidationError} naming the file.
 */
export function loadMigrations(dir: string): Migration[] {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new ConfigError(
      'dir',
      `Expected \`dir\` to be a directory of numbered .sql files, got ${describe(dir)}`,
    );
  }
  const byVersion = new Map<number, Migration>();
  for (const file of readdirSync(path).sort()) {
    if (!file.endsWith('.sql')) continue;
    const match = FILE_NAME.exec(file);
    if (!match) {
      throw new ValidationError(
        'migration',
        `Expected migration files named <number>_<name>.sql (e.g. 001_create_reports.sql), got ${JSON.stringify(file)}`,
      );
    }
    const version = Number(match[1]);
    const previous = byVersion.get(version);
    if (previous) {
      throw new ValidationError(
        'migration',
        `Expected one migration per version, got version ${version} twice (${previous.file} and ${file})`,
      );
    }
    const sql = readFileSync(join(path, file), 'utf8');
    byVersion.set(version, {
      version,
      name: match[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
      file,
    });
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}
