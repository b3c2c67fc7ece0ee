import { describe, expect, it } from 'vitest';
import { FleetError, redactUrl, ValidationError } from '../../src/reporting/errors.js';
import { MigrationFailedError } from '../../src/scheduler/apply-migrations.js';
import { connect } from '../../src/tenancy/drivers/index.js';

describe('redactUrl', () => {
  it.each([
    ['postgres://app:s3cret@db/x', 'postgres://app:***@db/x'],
    ['mysql://app:Hunter2/xyz@h:3306/d', 'mysql://app:***@h:3306/d'],
    ['see postgres://u:p@ss@host/db now', 'see postgres://u:***@host/db now'],
    ['redis://:secret@h:6379', 'redis://:***@h:6379'],
    // In free text a password runs to the last '@' before the next URL (it may hold
    // quotes): what follows the URL up to that '@' is hidden with it.
    ['{"url":"postgres://u:pw@h/db","email":"a@b.c"}', '{"url":"postgres://u:***@b.c"}'],
    ['from postgres://a:x1@h1/d to mysql://b:y2@h2/d', 'from postgres://a:***@h1/d to mysql://b:***@h2/d'],
    ['postgres://u:pa://ss@h/db', 'postgres://u:***@h/db'],
    ['postgres://u@h/db and a@b', 'postgres://u@h/db and a@b'],
    ['host=db password=hunter2 user=app', 'host=db password=*** user=app'],
  ])('%s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });
});

describe('driver errors', () => {
  it('carry no password in any field, even for a URL the driver cannot parse', async () => {
    // mysql2 keeps the rejected URL in the error's `input`; a '/' in the password makes
    // it unparseable.
    const error = await connect('mysql://app:Hunter2/xyz@127.0.0.1:3306/d').then(
      () => null,
      (err: unknown) => err as Error,
    );
    expect(error).toBeInstanceOf(Error);
    const everything = JSON.stringify({ ...error, message: error!.message, stack: error!.stack });
    expect(everything).not.toContain('Hunter2');
  });
});

describe('FleetError', () => {
  it('has a stable code and the subclass name', () => {
    const error = new ValidationError('slug', 'Expected a slug, got 3');
    expect(error).toBeInstanceOf(FleetError);
    expect(error.code).toBe('VALIDATION');
    expect(error.name).toBe('ValidationError');
    expect(error.field).toBe('slug');
  });
});

describe('MigrationFailedError', () => {
  it('is a FleetError with its own code, the migration and the cause', () => {
    const cause = new Error('syntax error at or near "CRATE"');
    const error = new MigrationFailedError(
      { version: 3, name: 'add_titles', sql: 'CRATE TABLE t ()', checksum: 'x' },
      cause,
    );
    expect(error).toBeInstanceOf(FleetError);
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.name).toBe('MigrationFailedError');
    expect(error.migration).toBe('3_add_titles');
    expect(error.cause).toBe(cause);
  });

  it('names a file as the directory lists it, leading zeros kept', () => {
    const error = new MigrationFailedError(
      { version: 3, name: 'add_titles', sql: 'CRATE TABLE t ()', checksum: 'x', file: '003_add_titles.sql' },
      new Error('syntax error'),
    );
    expect(error.migration).toBe('003_add_titles');
    expect(error.message).toBe('Migration 003_add_titles failed: syntax error');
  });
});
