/**
 * Redaction over every form of credential the drivers accept: each connection string as a
 * value (`redactConnectionString`, what `publicOrg` shows), quoted inside free text
 * (`redactUrl`, what messages and log lines go through), and inside a FleetError message.
 * The secret must not appear in any piece; the user, host and database still must.
 */
import { describe, expect, it } from 'vitest';
import { FleetError, redactConnectionString, redactUrl } from '../../src/index.js';
import { publicOrg } from '../../src/tenancy/org.js';
import { leakedPieces, SECRET_URL_CASES } from './secret-urls.js';

const org = (databaseUrl: string) => ({
  slug: 'acme',
  storageMode: 'database' as const,
  databaseUrl,
  schemaName: null,
  active: true,
  weight: 1,
  maxConcurrency: null,
  maxConnections: null,
  createdAt: new Date(0),
});

describe.each(SECRET_URL_CASES)('$name', ({ url, secret, visible }) => {
  it('redactConnectionString hides the secret and keeps user, host and database', () => {
    const shown = redactConnectionString(url);
    expect(leakedPieces(shown, secret)).toEqual([]);
    for (const part of visible) expect(shown).toContain(part);
    expect(shown).toContain('***');
  });

  it('publicOrg shows the database URL redacted', () => {
    const shown = JSON.stringify(publicOrg(org(url)));
    expect(leakedPieces(shown, secret)).toEqual([]);
    expect(shown).toContain('127.0.0.1');
  });

  it.each([
    ['plain text', (u: string) => `connecting to ${u} failed: timeout`],
    ['quoted', (u: string) => `Expected a reachable database, got '${u}' (retrying)`],
    ['JSON', (u: string) => JSON.stringify({ url: u, attempt: 2 })],
    ['a stack', (u: string) => `Error: cannot connect to ${u}\n    at connect (driver.js:1:1)`],
  ])('redactUrl hides it in %s', (_label, wrap) => {
    const shown = redactUrl(wrap(url));
    expect(leakedPieces(shown, secret)).toEqual([]);
    expect(shown).toContain('127.0.0.1');
  });

  it('a FleetError message never carries it', () => {
    const error = new FleetError('CONFIG', `Expected a working databaseUrl, got ${url}`);
    expect(leakedPieces(error.message, secret)).toEqual([]);
  });
});

describe('redactConnectionString on values without a password', () => {
  it.each([
    'sqlite:/var/lib/fleet/acme.db',
    'sqlite:./tenants/acme.db',
    'env://ACME_DATABASE_URL',
    'file:///run/secrets/acme-url',
    'postgres://rel@127.0.0.1:5432/appdb?application_name=a@b',
    'mysql://rel@127.0.0.1:3306/appdb',
  ])('leaves %s as it is', (value) => {
    expect(redactConnectionString(value)).toBe(value);
  });
});

describe('redactUrl on text it redacted already', () => {
  it.each(SECRET_URL_CASES.map((c) => [c.name, c.url]))(
    'changes nothing the second time: %s',
    (_name, url) => {
      const once = redactUrl(`connecting to ${url} failed for 'app'@'10.0.0.1': timeout`);
      expect(redactUrl(once)).toBe(once);
    },
  );

  it.each([
    'mysql://app:***@hunter2@db.internal:3306/x failed',
    'postgres://app:***@h0st hunter2@db.internal:5432/app failed',
  ])('still hides a password that begins like a redacted one: %#', (text) => {
    expect(redactUrl(text)).not.toContain('hunter2');
  });
});
