/**
 * The checks a command runs before it starts work: can it reach Redis (bullmq engine) and
 * the registry? A wrong URL or a stopped server then ends the command within seconds with
 * exit code 1, the URL (password redacted) and what to do, instead of a client retrying
 * forever in silence, or printing its own unhandled-error lines.
 */
import { Redis } from 'ioredis';
import { FleetError, redactUrl } from '../../reporting/errors.js';
import type { FleetConfig } from '../config/config.js';

/** How long one check waits for its server before giving up. */
export const PREFLIGHT_TIMEOUT_MS = 3000;

/** A service a command needs did not answer; the CLI exits 1 with this message. */
export class ServiceUnreachableError extends FleetError {
  /** Which service: `redis` or `registry`. */
  readonly service: 'redis' | 'registry';
  /** Its URL, password redacted. */
  readonly url: string;

  constructor(service: 'redis' | 'registry', url: string, hint: string, cause: unknown) {
    const reason = redactUrl(cause instanceof Error ? cause.message : String(cause));
    const what = service === 'redis' ? 'Redis' : 'the registry database';
    super(
      'SERVICE_UNREACHABLE',
      // The URL last: the server's reason may hold an `@` ('user'@'host'), and free text
      // is redacted up to the last `@` after a URL's password.
      missingDatabase(cause)
        ? `Expected ${what} to exist, got a refusal (${reason}): create it, or name an existing database in ${redactUrl(url)}`
        : refusedLogin(cause)
          ? `Expected ${what} to accept the login, got a refusal (${reason}): check the user, the password and the database in ${redactUrl(url)}`
          : `Cannot reach ${what} at ${redactUrl(url)} (${reason}): ${hint}`,
      { cause },
    );
    this.service = service;
    this.url = redactUrl(url);
  }
}

// How the servers say they answered but refused the user or its password: Postgres'
// SQLSTATE class 28, MySQL's access-denied errors, Redis' replies to AUTH.
const REFUSED_CODES = new Set([
  '28000',
  '28P01',
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
]);

// How they say the database named does not exist: Postgres' 3D000, MySQL's unknown database.
const MISSING_DATABASE_CODES = new Set(['3D000', 'ER_BAD_DB_ERROR']);

function codeOf(cause: unknown): unknown {
  return ((cause ?? {}) as { code?: unknown }).code;
}

function refusedLogin(cause: unknown): boolean {
  const code = codeOf(cause);
  if (typeof code === 'string' && REFUSED_CODES.has(code)) return true;
  const { message } = (cause ?? {}) as { message?: unknown };
  return typeof message === 'string' && /^(WRONGPASS|NOAUTH)\b/.test(message);
}

function missingDatabase(cause: unknown): boolean {
  const code = codeOf(cause);
  return typeof code === 'string' && MISSING_DATABASE_CODES.has(code);
}

/** Rejects after `ms` with `message`; the timer never keeps the process alive. */
export function deadline<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/**
 * PINGs the configured Redis once, without retrying, when the engine is bullmq; throws
 * {@link ServiceUnreachableError} when it does not answer within {@link PREFLIGHT_TIMEOUT_MS}.
 */
export async function checkRedis(config: FleetConfig): Promise<void> {
  if (config.engine !== 'bullmq') return;
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    connectTimeout: PREFLIGHT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: 'tenant-fleet:preflight',
  });
  // The failure is reported by the rejected connect below; without a listener ioredis
  // would print "Unhandled error event" on its own.
  // It also holds the telling error (ECONNREFUSED …) where connect() only says "Connection is closed".
  let socketError: Error | undefined;
  redis.on('error', (err: Error) => {
    socketError ??= err;
  });
  try {
    await deadline(
      redis.connect().then(() => redis.ping()),
      PREFLIGHT_TIMEOUT_MS,
      `no answer within ${PREFLIGHT_TIMEOUT_MS} ms`,
    );
  } catch (err) {
    throw new ServiceUnreachableError(
      'redis',
      config.redisUrl,
      'start Redis there, or set --redis-url, FLEET_REDIS_URL or `redisUrl` in the config to a running one',
      socketError ?? err,
    );
  } finally {
    redis.disconnect();
  }
}
