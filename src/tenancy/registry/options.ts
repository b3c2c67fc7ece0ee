/** The options of `OrgRegistry.open`, `list` and `count`, with their defaults and checks. */
import { describe, ValidationError } from '../../reporting/errors.js';
import { type Logger, silentLogger } from '../../reporting/logger.js';
import { durationOption } from '../../validate.js';
import { defaultSecretsResolver, type SecretsResolver } from '../secrets.js';

/** Options of {@link OrgRegistry.open}. */
export interface OrgRegistryOptions {
  /** Resolves an org's `databaseUrl` reference when provisioning. @default defaultSecretsResolver() */
  secrets?: SecretsResolver;
  /**
   * How long `get` / `find` may answer from memory. Every change made through this
   * registry forgets the cache at once; changes made by other processes show after at
   * most this long. 0 turns the cache off.
   * @default 2000
   */
  cacheTtlMs?: number;
  /** Gives up opening a connection (registry or provisioning) after this long. @default 10_000 */
  connectTimeoutMs?: number;
  /**
   * How long `close()` waits for statements already queued before it closes the
   * connection under them.
   * @default 5000
   */
  closeTimeoutMs?: number;
  /** Where migrations and provisioning are logged. @default no logging */
  logger?: Logger;
}

/** {@link OrgRegistryOptions} with every default filled in. */
export interface ResolvedOrgRegistryOptions {
  secrets: SecretsResolver;
  cacheTtlMs: number;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  logger: Logger;
}

const DEFAULTS = {
  cacheTtlMs: 2000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 5000,
} satisfies Partial<ResolvedOrgRegistryOptions>;

/** Validates {@link OrgRegistryOptions} and fills in the defaults. */
export function resolveOrgRegistryOptions(options: OrgRegistryOptions = {}): ResolvedOrgRegistryOptions {
  return {
    secrets: options.secrets ?? defaultSecretsResolver(),
    cacheTtlMs: durationOption('cacheTtlMs', options.cacheTtlMs ?? DEFAULTS.cacheTtlMs, 0),
    connectTimeoutMs: durationOption(
      'connectTimeoutMs',
      options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      1,
    ),
    closeTimeoutMs: durationOption('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs, 0),
    logger: options.logger ?? silentLogger,
  };
}

/** Filters and keyset paging of {@link OrgRegistry.list}. */
export interface OrgListOptions {
  /** Only active (true) or only deactivated (false) orgs. @default both */
  active?: boolean;
  /** Only orgs whose slug sorts after this one: the last slug of the previous page. */
  after?: string;
  /** At most this many orgs. @default all */
  limit?: number;
}

/** Filter of {@link OrgRegistry.count}. */
export interface OrgCountOptions {
  /** Count only active (true) or only deactivated (false) orgs. @default both */
  active?: boolean;
}

/** Checks the options of `list` and `count`; {@link ValidationError} names the bad one. */
export function validateListOptions(options: OrgListOptions): OrgListOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ValidationError('options', `Expected an options object, got ${describe(options)}`);
  }
  const { active, after, limit } = options;
  if (active !== undefined && typeof active !== 'boolean') {
    throw new ValidationError('active', `Expected \`active\` to be a boolean, got ${describe(active)}`);
  }
  if (after !== undefined && typeof after !== 'string') {
    throw new ValidationError(
      'after',
      `Expected \`after\` to be the last slug of the previous page, got ${describe(after)}`,
    );
  }
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
    throw new ValidationError('limit', `Expected \`limit\` to be an integer ≥ 1, got ${describe(limit)}`);
  }
  return { active, after, limit };
}
