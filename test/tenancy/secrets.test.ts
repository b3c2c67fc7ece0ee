import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretResolutionError } from '../../src/reporting/errors.js';
import {
  ChainSecretsResolver,
  defaultSecretsResolver,
  EnvSecretsResolver,
  FileSecretsResolver,
  LiteralSecretsResolver,
  type SecretsResolver,
} from '../../src/tenancy/secrets.js';
import { tempDir, uniqueName } from '../support/services.js';

const SECRET = 'postgres://app:hunter2-s3cret@db.internal:5432/acme';
const PASSWORD = 'hunter2-s3cret';

/** Expects a SecretResolutionError that never shows the password, and returns it. */
async function failure(resolver: SecretsResolver, ref: string): Promise<SecretResolutionError> {
  const err = await resolver.resolve(ref).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretResolutionError);
  const error = err as SecretResolutionError;
  expect(error.code).toBe('SECRET_RESOLUTION');
  for (const text of [error.message, error.reference, String(error.stack)])
    expect(text).not.toContain(PASSWORD);
  return error;
}

describe('LiteralSecretsResolver', () => {
  it('returns the reference itself', async () => {
    expect(await new LiteralSecretsResolver().resolve(SECRET)).toBe(SECRET);
  });

  it('rejects an empty reference', async () => {
    await failure(new LiteralSecretsResolver(), '');
  });
});

describe('EnvSecretsResolver', () => {
  it('reads the variable from its env object at resolve time', async () => {
    const env: Record<string, string | undefined> = {};
    const resolver = new EnvSecretsResolver(env);
    await failure(resolver, 'env://TENANT_DB');
    env.TENANT_DB = SECRET;
    expect(await resolver.resolve('env://TENANT_DB')).toBe(SECRET);
    env.TENANT_DB = 'postgres://app@db/rotated';
    expect(await resolver.resolve('env://TENANT_DB')).toBe('postgres://app@db/rotated');
  });

  it('reads process.env by default', async () => {
    const name = uniqueName('FLEET_SECRET').toUpperCase();
    const resolver = new EnvSecretsResolver();
    process.env[name] = SECRET;
    try {
      expect(await resolver.resolve(`env://${name}`)).toBe(SECRET);
    } finally {
      delete process.env[name];
    }
    await failure(resolver, `env://${name}`);
  });

  it('env://MISSING names the scheme and the variable', async () => {
    const err = await failure(new EnvSecretsResolver({ OTHER: SECRET }), 'env://MISSING');
    expect(err.message).toContain('MISSING');
    expect(err.message).toContain('env://');
    expect(err.reference).toBe('env://MISSING');
  });

  it('treats an empty variable as missing', async () => {
    const err = await failure(new EnvSecretsResolver({ EMPTY: '' }), 'env://EMPTY');
    expect(err.message).toContain('EMPTY');
  });

  it('rejects a malformed name and a reference of another scheme without echoing it', async () => {
    const resolver = new EnvSecretsResolver({ 'A-B': SECRET });
    await failure(resolver, 'env://A-B');
    await failure(resolver, 'env://');
    const err = await failure(resolver, SECRET);
    expect(err.message).toContain('postgres');
  });
});

describe('FileSecretsResolver', () => {
  const dir = tempDir('tenant-fleet-secrets-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns the trimmed contents of the file', async () => {
    const path = join(dir, 'tenant.url');
    writeFileSync(path, `  ${SECRET}\n\n`);
    expect(await new FileSecretsResolver().resolve(`file://${path}`)).toBe(SECRET);
  });

  it('an unreadable file names the scheme and the path, never the contents', async () => {
    const resolver = new FileSecretsResolver();
    const missing = join(dir, 'missing.url');
    const err = await failure(resolver, `file://${missing}`);
    expect(err.message).toContain(missing);
    expect(err.message).toContain('ENOENT');
    expect(err.message).toContain('file:');

    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    expect((await failure(resolver, `file://${folder}`)).message).toContain('EISDIR');
  });

  it('rejects an empty file, a relative path and a reference of another scheme', async () => {
    const resolver = new FileSecretsResolver();
    const empty = join(dir, 'empty.url');
    writeFileSync(empty, '\n  \n');
    expect((await failure(resolver, `file://${empty}`)).message).toContain('empty');
    await failure(resolver, 'file://relative/secret.url');
    await failure(resolver, SECRET);
  });
});

describe('ChainSecretsResolver', () => {
  const dir = tempDir('tenant-fleet-chain-');
  const path = join(dir, 'db.url');
  writeFileSync(path, `${SECRET}\n`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('dispatches env://, file:// and anything else to literal', async () => {
    const chain = new ChainSecretsResolver({ env: { TENANT: 'mysql://root@db/t' } });
    expect(await chain.resolve('env://TENANT')).toBe('mysql://root@db/t');
    expect(await chain.resolve(`file://${path}`)).toBe(SECRET);
    expect(await chain.resolve(SECRET)).toBe(SECRET);
    expect(await chain.resolve('sqlite:/var/lib/fleet/acme.db')).toBe('sqlite:/var/lib/fleet/acme.db');
    expect((await failure(chain, 'env://MISSING')).message).toContain('MISSING');
    expect((await failure(chain, 'file:///no/such/file')).message).toContain('/no/such/file');
  });

  it('takes resolvers for more schemes and another fallback', async () => {
    const vault: SecretsResolver = {
      resolve: async (ref) => `postgres://app@vault/${ref.slice('vault://'.length)}`,
    };
    const refuse: SecretsResolver = {
      resolve: async (ref) => {
        throw new SecretResolutionError(ref, 'Expected a registered scheme, got none');
      },
    };
    const chain = new ChainSecretsResolver({ schemes: { vault }, fallback: refuse });
    expect(await chain.resolve('vault://acme')).toBe('postgres://app@vault/acme');
    const spelled = new ChainSecretsResolver({ schemes: { 'VAULT://': vault } });
    expect(await spelled.resolve('vault://acme')).toBe('postgres://app@vault/acme');
    const err = await failure(chain, SECRET);
    expect(err.reference).toBe('postgres://app:***@db.internal:5432/acme');
  });

  it('defaultSecretsResolver resolves env, file and literal references', async () => {
    const resolver = defaultSecretsResolver({ env: { DB: SECRET } });
    expect(await resolver.resolve('env://DB')).toBe(SECRET);
    expect(await resolver.resolve(`file://${path}`)).toBe(SECRET);
    expect(await resolver.resolve('postgres://app@db/x')).toBe('postgres://app@db/x');
  });
});
