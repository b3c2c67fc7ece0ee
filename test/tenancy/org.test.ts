import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/reporting/errors.js';
import {
  applyOrgPatch,
  defaultSchemaName,
  type Org,
  type OrgInput,
  publicOrg,
  validateOrgInput,
  validateSchemaName,
  validateSlug,
} from '../../src/tenancy/org.js';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe('VALIDATION');
    return (err as ValidationError).field;
  }
  throw new Error('expected a ValidationError, got none');
}

describe('slug', () => {
  it.each(['a', '0', 'acme', 'acme-corp', 'acme_corp', '9to5', `a${'b'.repeat(61)}c`])(
    'accepts %s',
    (slug) => {
      expect(validateSlug(slug)).toBe(slug);
    },
  );

  it.each([
    ['upper case', 'Acme'],
    ['a space', 'ac me'],
    ['a quote', "ac'me"],
    ['a double quote', 'ac"me'],
    ['../', '../acme'],
    ['empty', ''],
    ['over 63 characters', 'a'.repeat(64)],
    ['a leading dash', '-acme'],
    ['a trailing underscore', 'acme_'],
    ['a non-string', 42],
  ])('rejects one with %s, saying what it expected and what it got', (_what, slug) => {
    expect(fieldOf(() => validateSlug(slug))).toBe('slug');
    expect(() => validateSlug(slug)).toThrow(/Expected `slug`.*got/);
  });
});

describe('schema name', () => {
  it('accepts a lower-case identifier of up to 63 characters', () => {
    expect(validateSchemaName('tenant_acme')).toBe('tenant_acme');
    expect(validateSchemaName(`_${'a'.repeat(62)}`)).toHaveLength(63);
  });

  it.each(['a"; drop schema public; --', 'Acme', '1acme', 'a-b', '', 'a'.repeat(64)])(
    'rejects %s',
    (name) => {
      expect(fieldOf(() => validateSchemaName(name))).toBe('schemaName');
    },
  );

  it('defaults to the slug with - turned to _', () => {
    expect(defaultSchemaName('acme-corp-eu')).toBe('acme_corp_eu');
  });
});

describe('validateOrgInput', () => {
  it('fills in the defaults of schema mode', () => {
    expect(validateOrgInput({ slug: 'acme-corp' })).toEqual({
      slug: 'acme-corp',
      storageMode: 'schema',
      databaseUrl: null,
      schemaName: 'acme_corp',
      active: true,
      weight: 1,
      maxConcurrency: null,
      maxConnections: null,
    });
  });

  it('keeps the fields of database mode', () => {
    const input: OrgInput = {
      slug: 'globex',
      storageMode: 'database',
      databaseUrl: 'env://GLOBEX_DB',
      active: false,
      weight: 5,
      maxConcurrency: 2,
      maxConnections: 4,
    };
    expect(validateOrgInput(input)).toEqual({ ...input, schemaName: null });
  });

  it.each<[string, OrgInput, string]>([
    ['a bad slug', { slug: 'Acme' }, 'slug'],
    ['an injected schema name', { slug: 'acme', schemaName: 'a"; drop schema public; --' }, 'schemaName'],
    ['an unknown storage mode', { slug: 'acme', storageMode: 'shard' as 'schema' }, 'storageMode'],
    ['database mode without databaseUrl', { slug: 'acme', storageMode: 'database' }, 'databaseUrl'],
    [
      'database mode with a blank databaseUrl',
      { slug: 'acme', storageMode: 'database', databaseUrl: ' ' },
      'databaseUrl',
    ],
    ['schema mode with a databaseUrl', { slug: 'acme', databaseUrl: 'postgres://x@y/z' }, 'databaseUrl'],
    [
      'database mode with a schema name',
      { slug: 'acme', storageMode: 'database', databaseUrl: 'env://X', schemaName: 'acme' },
      'schemaName',
    ],
    ['weight 0', { slug: 'acme', weight: 0 }, 'weight'],
    ['weight 1.5', { slug: 'acme', weight: 1.5 }, 'weight'],
    ['maxConcurrency 0', { slug: 'acme', maxConcurrency: 0 }, 'maxConcurrency'],
    ['maxConnections -1', { slug: 'acme', maxConnections: -1 }, 'maxConnections'],
    ['a non-boolean active', { slug: 'acme', active: 'yes' as unknown as boolean }, 'active'],
  ])('rejects %s', (_what, input, field) => {
    expect(fieldOf(() => validateOrgInput(input))).toBe(field);
  });

  it('asks for a schema name when the slug starts with a digit', () => {
    expect(fieldOf(() => validateOrgInput({ slug: '9to5' }))).toBe('schemaName');
    expect(() => validateOrgInput({ slug: '9to5' })).toThrow(/slug "9to5"/);
    expect(validateOrgInput({ slug: '9to5', schemaName: 'nine_to_five' }).schemaName).toBe('nine_to_five');
  });

  it('rejects a value that is not an object', () => {
    expect(fieldOf(() => validateOrgInput(null as unknown as OrgInput))).toBe('org');
  });
});

describe('applyOrgPatch', () => {
  const org: Org = { ...validateOrgInput({ slug: 'acme', weight: 2 }), createdAt: new Date(0) };

  it('changes the patched fields only', () => {
    expect(applyOrgPatch(org, { weight: 3, maxConnections: 8 })).toMatchObject({
      slug: 'acme',
      schemaName: 'acme',
      weight: 3,
      maxConnections: 8,
      active: true,
    });
  });

  it('switching to database mode drops the schema and needs a databaseUrl', () => {
    expect(fieldOf(() => applyOrgPatch(org, { storageMode: 'database' }))).toBe('databaseUrl');
    expect(applyOrgPatch(org, { storageMode: 'database', databaseUrl: 'env://ACME_DB' })).toMatchObject({
      storageMode: 'database',
      databaseUrl: 'env://ACME_DB',
      schemaName: null,
    });
  });

  it('never changes the slug and validates the result', () => {
    expect(fieldOf(() => applyOrgPatch(org, { slug: 'other' } as never))).toBe('slug');
    expect(fieldOf(() => applyOrgPatch(org, { weight: 0 }))).toBe('weight');
  });
});

describe('publicOrg', () => {
  it('redacts the password of a literal database URL', () => {
    const org: Org = {
      ...validateOrgInput({
        slug: 'acme',
        storageMode: 'database',
        databaseUrl: 'postgres://app:s3cret@db/acme',
      }),
      createdAt: new Date(0),
    };
    expect(publicOrg(org).databaseUrl).toBe('postgres://app:***@db/acme');
    expect(JSON.stringify(publicOrg(org))).not.toContain('s3cret');
  });
});
