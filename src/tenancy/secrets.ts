import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SecretResolutionError } from '../reporting/errors.js';

/**
 * Turns a secret reference (an org's `databaseUrl`) into the secret itself, at the last
 * moment: when a pool is built or a tenant is provisioned. Implementations must never put
 * the resolved value into an error message or a log line.
 */
export interface SecretsResolver {
  /** Resolves `ref` to its secret; rejects with {@link SecretResolutionError} when it cannot. */
  resolve(ref: string): Promise<string>;
}

/** The scheme of a reference (`env`, `file`, `postgres` …), lower-cased, or null when it has none. */
export function schemeOf(ref: string): string | null {
  return /^([a-z][a-z0-9+.-]*):/i.exec(ref)?.[1]?.toLowerCase() ?? null;
}

// Names the scheme for a message without echoing the reference: for a literal, the
// reference *is* the secret.
function schemeLabel(ref: string): string {
  const scheme = schemeOf(ref);
  return scheme === null ? 'a reference without a scheme' : `a ${scheme}: reference`;
}

/** The reference is the secret: a literal connection URL. */
export class LiteralSecretsResolver implements SecretsResolver {
  async resolve(ref: string): Promise<string> {
    if (typeof ref !== 'string' || ref === '') {
      throw new SecretResolutionError('', 'Expected a non-empty literal secret, got an empty one');
    }
    return ref;
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `env://NAME`: the value of the environment variable `NAME`, read at resolve time (so a
 * rotated secret is picked up by the next pool built), never at import time.
 */
export class EnvSecretsResolver implements SecretsResolver {
  readonly #env: Readonly<Record<string, string | undefined>>;

  /** @param env where variables are read from. @default process.env */
  constructor(env: Readonly<Record<string, string | undefined>> = process.env) {
    this.#env = env;
  }

  async resolve(ref: string): Promise<string> {
    const match = /^env:\/\/(.*)$/i.exec(ref);
    if (!match) {
      throw new SecretResolutionError(
        ref,
        `Expected a reference of the form env://NAME, got ${schemeLabel(ref)}`,
      );
    }
    const name = match[1] ?? '';
    if (!ENV_NAME.test(name)) {
      throw new SecretResolutionError(
        ref,
        `Expected env://NAME with NAME made of letters, digits and '_', got env://${JSON.stringify(name.slice(0, 64))}`,
      );
    }
    const value = this.#env[name];
    if (value === undefined || value === '') {
      throw new SecretResolutionError(
        ref,
        `Expected environment variable ${name} (from env://${name}) to be set, got ${value === undefined ? 'it unset' : 'an empty value'}`,
      );
    }
    return value;
  }
}

/**
 * `file:///absolute/path`: the contents of the file, trimmed (so a trailing newline from
 * `echo` or a Kubernetes secret mount does not end up in the URL).
 */
export class FileSecretsResolver implements SecretsResolver {
  async resolve(ref: string): Promise<string> {
    if (!/^file:\/\//i.test(ref)) {
      throw new SecretResolutionError(
        ref,
        `Expected a reference of the form file:///absolute/path, got ${schemeLabel(ref)}`,
      );
    }
    let path: string;
    try {
      path = fileURLToPath(ref);
    } catch {
      throw new SecretResolutionError(
        ref,
        `Expected a reference of the form file:///absolute/path, got ${JSON.stringify(ref.slice(0, 200))}`,
      );
    }
    if (!isAbsolute(path)) {
      throw new SecretResolutionError(ref, `Expected an absolute path in the file: reference, got ${path}`);
    }
    let contents: string;
    try {
      contents = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'an error';
      throw new SecretResolutionError(
        ref,
        `Expected a readable secret file at ${path} (from a file: reference), got ${code}`,
        { cause: err },
      );
    }
    const secret = contents.trim();
    if (secret === '') {
      throw new SecretResolutionError(
        ref,
        `Expected a secret in ${path} (from a file: reference), got an empty file`,
      );
    }
    return secret;
  }
}

/** Options of {@link ChainSecretsResolver}. */
export interface ChainSecretsResolverOptions {
  /**
   * Resolvers by scheme, without `:` or `//` (e.g. `{ vault: myVaultResolver }`), merged
   * over the built-in ones.
   * @default { env: new EnvSecretsResolver(), file: new FileSecretsResolver() }
   */
  schemes?: Record<string, SecretsResolver>;
  /**
   * Resolves references whose scheme has no resolver, such as a literal `postgres://` URL.
   * @default new LiteralSecretsResolver()
   */
  fallback?: SecretsResolver;
  /** Environment of the built-in `env` resolver. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Dispatches on the reference's scheme: `env://` and `file://` to their resolvers, any
 * scheme registered in `schemes` to its own, anything else (a literal URL) to `fallback`.
 */
export class ChainSecretsResolver implements SecretsResolver {
  readonly #schemes: ReadonlyMap<string, SecretsResolver>;
  readonly #fallback: SecretsResolver;

  constructor(options: ChainSecretsResolverOptions = {}) {
    const schemes: Record<string, SecretsResolver> = {
      env: new EnvSecretsResolver(options.env),
      file: new FileSecretsResolver(),
      ...options.schemes,
    };
    // Accept `vault`, `vault:` and `vault://` alike as the key.
    this.#schemes = new Map(
      Object.entries(schemes).map(([scheme, r]) => [scheme.toLowerCase().replace(/:?\/*$/, ''), r]),
    );
    this.#fallback = options.fallback ?? new LiteralSecretsResolver();
  }

  resolve(ref: string): Promise<string> {
    if (typeof ref !== 'string') {
      return Promise.reject(
        new SecretResolutionError('', `Expected a secret reference string, got ${typeof ref}`),
      );
    }
    const scheme = schemeOf(ref);
    const resolver = scheme === null ? undefined : this.#schemes.get(scheme);
    return (resolver ?? this.#fallback).resolve(ref);
  }
}

/** The resolver tenant-fleet uses unless told otherwise: `env://`, `file://`, else literal. */
export function defaultSecretsResolver(
  options: Pick<ChainSecretsResolverOptions, 'env'> = {},
): SecretsResolver {
  return new ChainSecretsResolver(options);
}
