/**
 * `--log-format pretty`: one short line per log entry for a terminal, instead of JSON.
 * It is a pino destination, so what it receives is the finished line, already redacted
 * by the logger (see `createLogger`): the pretty line is made from that, never from the
 * raw fields. A line that is not JSON is passed through as it is.
 */
import { writeSync } from 'node:fs';

/** The log formats of the CLI. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
/** A log format of the CLI: JSON lines (the default) or pretty ones for a terminal. */
export type LogFormat = (typeof LOG_FORMATS)[number];

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

// Written on every line by pino, or shown in the line's head: not repeated as fields.
const HEAD_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

function value(item: unknown): string {
  if (typeof item === 'string') return /^[^\s="]+$/.test(item) ? item : JSON.stringify(item);
  return JSON.stringify(item) ?? String(item);
}

function clock(time: unknown): string {
  const date = new Date(typeof time === 'number' ? time : Date.now());
  return date.toISOString().slice(11, 23);
}

/** Turns one JSON log line of pino into a pretty one (with its newline). */
export function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (typeof entry !== 'object' || entry === null) return line.endsWith('\n') ? line : `${line}\n`;
  const level = LEVELS[Number(entry.level)] ?? String(entry.level);
  const parts = [clock(entry.time), level.padEnd(5), String(entry.msg ?? '')];
  for (const [key, item] of Object.entries(entry)) {
    if (HEAD_KEYS.has(key) || item === undefined) continue;
    if (key === 'err' && item && typeof item === 'object') {
      const err = item as { type?: unknown; message?: unknown };
      parts.push(`err=${value(`${String(err.type ?? 'Error')}: ${String(err.message ?? '')}`)}`);
      continue;
    }
    parts.push(`${key}=${value(item)}`);
  }
  return `${parts.join(' ')}\n`;
}

/** A pino destination writing pretty lines to the file descriptor `fd`, synchronously. */
export function prettyDestination(fd: number): { write(line: string): void } {
  return {
    write(line: string) {
      writeSync(fd, prettyLine(line));
    },
  };
}
