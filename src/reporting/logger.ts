import pino from 'pino';
import { isSecretKey, REDACTED, redactJsonText, redactUrl } from './redact.js';

/** The logger every tenant-fleet component takes: a pino logger. */
export type Logger = pino.Logger;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default 'info' */
  level?: pino.LevelWithSilent;
  /** Written as `name` on every line. @default 'tenant-fleet' */
  name?: string;
  /** Where lines go. @default standard output */
  destination?: pino.DestinationStream;
  /** Fields written on every line (`pid` and `hostname` by default, as pino does). */
  base?: Record<string, unknown> | null;
}

/** Resolved {@link LoggerOptions}. */
export interface ResolvedLoggerOptions {
  level: pino.LevelWithSilent;
  name: string;
  destination: pino.DestinationStream | undefined;
  base: Record<string, unknown> | null | undefined;
}

const DEFAULTS = {
  level: 'info',
  name: 'tenant-fleet',
} satisfies Partial<ResolvedLoggerOptions>;

/** Fills in the defaults of {@link LoggerOptions}. */
export function resolveLoggerOptions(options: LoggerOptions = {}): ResolvedLoggerOptions {
  return {
    level: options.level ?? DEFAULTS.level,
    name: options.name ?? DEFAULTS.name,
    destination: options.destination,
    base: options.base,
  };
}

// Deeper than this, objects are left to the line-level pass below.
const MAX_DEPTH = 12;

/**
 * A copy of `value` in which every string has its URL passwords redacted: nested
 * objects, arrays, errors (serialized with their stack and cause) and `toJSON` values
 * (such as `URL` instances) included.
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactUrl(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Date || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (depth >= MAX_DEPTH) return value;
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  try {
    if (value instanceof Error) return redactError(value, depth, seen);
    if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, seen));
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return redactValue(toJSON.call(value), depth + 1, seen);
    if (value instanceof Map || value instanceof Set) return value;
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // A driver config object (`{ host, user, password, sslpassword }`) carries the secret bare.
      copy[key] = isSecretKey(key) && item != null ? REDACTED : redactValue(item, depth + 1, seen);
    }
    return copy;
  } finally {
    seen.delete(value);
  }
}

// pino's standard error serializer (type, message and stack with causes, own fields), with
// every string redacted: a driver error's message or stack may quote a connection URL.
function redactError(err: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const serialized = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  const copy: Record<string, unknown> = {
    type: serialized.type,
    message: messageWithCauses(err),
    stack: redactUrl(String(serialized.stack ?? '')),
  };
  for (const [key, item] of Object.entries(serialized)) {
    if (key === 'raw' || key in copy) continue;
    copy[key] = redactValue(item, depth + 1, seen);
  }
  return copy;
}

// The message with its causes' (`a: b: c`), redacted, as pino's serializer joins them, but
// a cause an error's message already quotes (TenantConnectionError's "got connect
// ECONNREFUSED …") is not said twice: compared redacted, as such a message quotes it.
function messageWithCauses(err: Error): string {
  let text = redactUrl(err.message);
  const seen = new Set<unknown>([err]);
  let cause = err.cause as { message?: unknown; cause?: unknown } | null | undefined;
  while (typeof cause === 'object' && cause !== null && !seen.has(cause)) {
    seen.add(cause);
    const message = typeof cause.message === 'string' ? redactUrl(cause.message) : '';
    if (message && !text.includes(message)) text += `: ${message}`;
    cause = cause.cause as typeof cause;
  }
  return text;
}

// A last pass over the finished JSON line, for anything a custom serializer produced: each
// JSON string is redacted on its own, so the line stays valid JSON.
function redactLine(line: string): string {
  return redactJsonText(line);
}

/**
 * Creates the pino logger tenant-fleet components log to. Every credential of a
 * connection string (`postgres://app:***@db/x`, `?sslpassword=…`, libpq `password='…'`;
 * see {@link redactUrl}) is redacted wherever it appears: in the message (format
 * arguments included), in any field however deeply nested, in child bindings, and in
 * serialized errors (message, stack, causes and own fields). A field named like a
 * credential (`password`, `sslpassword`, `sslkey`…) is redacted whole.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const resolved = resolveLoggerOptions(options);
  const pinoOptions: pino.LoggerOptions = {
    level: resolved.level,
    name: resolved.name,
    ...(resolved.base !== undefined ? { base: resolved.base } : {}),
    serializers: {
      // `formatters.log` has already serialized and redacted every error; pino's own
      // `err` serializer would serialize that plain object again and call it an `Object`.
      err: (err: unknown) => err,
      // Applied by pino to the final message, after `%s` interpolation.
      msg: (msg: unknown) => (typeof msg === 'string' ? redactUrl(msg) : redactValue(msg)),
    },
    formatters: {
      log: (obj) => redactValue(obj) as Record<string, unknown>,
      bindings: (bindings) => redactValue(bindings) as pino.Bindings,
    },
    hooks: { streamWrite: redactLine },
  };
  return resolved.destination ? pino(pinoOptions, resolved.destination) : pino(pinoOptions);
}

/** The logger a component uses when it is given none: it writes nothing. */
export const silentLogger: Logger = pino({ level: 'silent' });
