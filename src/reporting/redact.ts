/**
 * Redaction of secrets in connection strings and in free text. A leaf module: it imports
 * nothing from tenant-fleet, so `errors.ts` (and through it every layer) can use it.
 *
 * Two entry points, for two kinds of input:
 * - {@link redactConnectionString} for one value known to be a connection string (an
 *   org's `databaseUrl`): it is read the way the driver that will use it reads it, and
 *   every credential the driver would see is replaced, leaving user, host, port and
 *   database readable.
 * - {@link redactUrl} for free text (messages, stacks, log lines), where the extent of a
 *   URL is a guess: it errs on the side of hiding too much.
 */
import { createRequire } from 'node:module';
import { parse as parsePostgresUrl } from 'pg-connection-string';

/** What a secret is replaced with. */
export const REDACTED = '***';

// Keys whose value is a credential: `password`, `sslpassword`, mysql2's `password1..3`
// and `passwordSha1`, libpq's `sslkey` (the client key), `PGPASSWORD`, `pwd`, tokens…
// Erring wide: a key such as `bypass` is hidden too, which costs nothing.
const SECRET_KEY = /pass|pwd|secret|token|sslkey|credential|private/i;

/** True when a field or parameter named `key` holds a credential (`password`, `sslpassword`, `sslkey`…). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * Redacts every credential in free text: the password of every `scheme://user:password@host`
 * URL, and the value of every secret `key=value` (a URL's `?password=` / `&sslpassword=`,
 * a libpq `password='a b'`, quoted or not) and of every quoted `password: '…'` /
 * `"password": "…"` field. A URL's password is taken to run from the first `:` after
 * `//` to the last `@` before the next URL on the line (to the line's last `@` when there
 * is none before it), so a password holding `@`, `/`, `'`, `"` or spaces is hidden whole;
 * text after the URL up to that `@` (an e-mail address) may be hidden with it.
 */
export function redactUrl(text: string): string {
  if (typeof text !== 'string') return text;
  // A password never spans lines; each line is scanned on its own.
  return text
    .split(/(\r?\n)/)
    .map((line) => (/\r?\n/.test(line) ? line : redactSpans(line, secretSpans(line))))
    .join('');
}

/**
 * Redacts one connection string, parsed the way its driver parses it: a `postgres://`
 * URL with `pg-connection-string` (node-postgres' own parser), a `mysql://` / `mariadb://`
 * URL with mysql2's, a libpq `key=value` string by its quoting rules. The password in the
 * user-info and every secret query parameter (`password`, `sslpassword`, `sslkey`…) become
 * `***`; user, host, port, database and other parameters stay. Anything the driver would
 * reject, and any result in which a credential the driver would use still appears, is
 * redacted as free text instead ({@link redactUrl}), which hides more. A `sqlite:` path,
 * an `env://` or `file://` reference carries no password and comes back as it is (unless
 * the free-text pass finds one).
 */
export function redactConnectionString(value: string): string {
  if (typeof value !== 'string') return value;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return redactParsedUrl(value, postgresSecrets);
  if (scheme === 'mysql' || scheme === 'mariadb') return redactParsedUrl(value, mysqlSecrets);
  return redactUrl(value);
}

// --- URLs read the way the drivers read them ---------------------------------------------

// A secret shorter than this would also match innocent text ("a" in "postgres"), so the
// after-the-fact check below skips it; the structural pass has replaced it regardless.
const MIN_CHECKED_SECRET = 4;

function redactParsedUrl(url: string, secretsOf: (url: string) => string[]): string {
  let secrets: string[];
  try {
    secrets = secretsOf(url);
  } catch {
    // The driver cannot read it, so nothing says where its parts are: hide generously.
    return redactUrl(url);
  }
  const redacted = redactUrlStructure(url);
  const leaks = secrets.some((secret) => secret.length >= MIN_CHECKED_SECRET && appearsIn(redacted, secret));
  return leaks ? redactUrl(url) : redacted;
}

function appearsIn(text: string, secret: string): boolean {
  const forms = new Set([secret, encodeURIComponent(secret), encodeURI(secret)]);
  for (const form of forms) if (text.includes(form)) return true;
  return false;
}

// node-postgres: every credential pg-connection-string hands to the client. Its parse()
// reads the files named by sslcert/sslkey/sslrootcert and warns about some sslmode values;
// neither is a credential (the sslkey path is redacted by the structural pass anyway), so
// they are left out of what it is given: redacting must not touch the disk or warn.
const IGNORED_POSTGRES_PARAMS = /^(?:ssl(?:cert|key|rootcert|mode)|uselibpqcompat)$/i;

function postgresSecrets(url: string): string[] {
  const config = parsePostgresUrl(withoutParams(url, IGNORED_POSTGRES_PARAMS)) as Record<string, unknown>;
  return secretValues(config);
}

// mysql2: ConnectionConfig.parseUrl, loaded only when a MySQL URL is redacted so that the
// driver is not paid for by every import of this module.
function mysqlSecrets(url: string): string[] {
  const require = createRequire(import.meta.url);
  const { ConnectionConfig } = require('mysql2') as {
    ConnectionConfig: { parseUrl(url: string): Record<string, unknown> };
  };
  return secretValues(ConnectionConfig.parseUrl(url.replace(/^mariadb:/i, 'mysql:')));
}

function secretValues(config: Record<string, unknown>): string[] {
  const secrets: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (!isSecretKey(key) || value === undefined || value === null || value === '') continue;
    secrets.push(typeof value === 'string' ? value : JSON.stringify(value));
  }
  return secrets;
}

function withoutParams(url: string, drop: RegExp): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const hash = url.indexOf('#', query);
  const end = hash < 0 ? url.length : hash;
  const kept = url
    .slice(query + 1, end)
    .split('&')
    .filter((pair) => !drop.test(decodeKey(pair.split('=')[0] ?? '')));
  return `${url.slice(0, query)}${kept.length ? `?${kept.join('&')}` : ''}${url.slice(end)}`;
}

/**
 * Splits a URL the way the WHATWG URL parser does for a non-special scheme, which both
 * drivers use (`new URL`): the authority runs from `//` to the first `/`, `?` or `#`; the
 * user-info is the authority up to its LAST `@`; the password is the user-info after its
 * first `:`. The query runs to `#`, in `&`-separated `key=value` pairs.
 */
function redactUrlStructure(url: string): string {
  const head = /^[a-z][a-z0-9+.-]*:(?:\/\/)?/i.exec(url)?.[0] ?? '';
  const rest = url.slice(head.length);
  const authorityEnd = firstIndexOf(rest, '/?#');
  let authority = rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) authority = `${userinfo.slice(0, colon + 1)}${REDACTED}${authority.slice(at)}`;
  }
  let tail = rest.slice(authorityEnd);
  const query = tail.indexOf('?');
  if (query >= 0) {
    const hash = tail.indexOf('#', query);
    const end = hash < 0 ? tail.length : hash;
    const pairs = tail
      .slice(query + 1, end)
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        return eq >= 0 && isSecretKey(decodeKey(pair.slice(0, eq)))
          ? `${pair.slice(0, eq + 1)}${REDACTED}`
          : pair;
      });
    tail = `${tail.slice(0, query + 1)}${pairs.join('&')}${redactUrl(tail.slice(end))}`;
  }
  return `${head}${authority}${tail}`;
}

function firstIndexOf(text: string, chars: string): number {
  for (let i = 0; i < text.length; i++) if (chars.includes(text[i]!)) return i;
  return text.length;
}

// A query key as URLSearchParams decodes it.
function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

// --- free text -----------------------------------------------------------------------------

type Span = readonly [start: number, end: number];

const SCHEME_START = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\//gi;
const TOKEN_START = /[\s"'`(<,=[{]/;
// `password=`, `sslpassword =`, `PGPASSWORD=`: a secret key, then `=`.
const KEY_EQUALS = /(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]+)\s*=\s*/g;
// `password: '…'`, `"password": "…"`, `password: \`…\``: a secret key, a colon, a quote.
const KEY_COLON = /(?<![A-Za-z0-9_.-])(["']?)([A-Za-z0-9_.-]+)\1\s*:\s*(?=["'`])/g;

function secretSpans(line: string): Span[] {
  const spans: Span[] = [];
  // Every scan below is linear in the line: positions are looked up by binary search and a
  // key=value match resumes after the value it hid, so a hostile log line costs no more
  // than a long one.
  const ats = positionsOf(line, '@');
  const colons = positionsOf(line, ':');
  const urls = [...line.matchAll(SCHEME_START)];
  // A URL that starts a new word (after a space, a quote, `=`…) ends the one before it.
  const boundaries = urls.map((m) => m.index).filter((i) => i === 0 || TOKEN_START.test(line[i - 1]!));
  let b = 0;
  for (const match of urls) {
    // User-info: after `//`, up to the last `@` before the next URL (or, when there is none
    // there, on the whole line: the password may hold `x://`); the password after its first `:`.
    const start = match.index + match[0].length;
    while (b < boundaries.length && boundaries[b]! <= match.index) b++;
    const next = boundaries[b] ?? line.length;
    const colon = colons[firstAtOrAfter(colons, start)] ?? -1;
    let at = ats[firstAtOrAfter(ats, next) - 1] ?? -1;
    if (at < start || colon < 0 || colon > at) at = ats[ats.length - 1] ?? -1;
    if (at < start || colon < 0 || colon > at) continue;
    if (colon + 1 < at) spans.push([colon + 1, at]);
  }
  const keyEquals = new RegExp(KEY_EQUALS);
  for (let match = keyEquals.exec(line); match; match = keyEquals.exec(line)) {
    if (!isSecretKey(match[1]!)) continue;
    const start = match.index + match[0].length;
    const before = match.index > 0 ? line[match.index - 1] : '';
    // In a query string the value runs to the next `&` or `#`, spaces and all (node-postgres
    // encodes them); elsewhere (libpq `key=value`) to the next space unless quoted.
    const span = valueSpan(line, start, before === '?' || before === '&' ? '&#' : ' \t');
    spans.push(span);
    keyEquals.lastIndex = Math.max(keyEquals.lastIndex, span[1]);
  }
  const keyColon = new RegExp(KEY_COLON);
  for (let match = keyColon.exec(line); match; match = keyColon.exec(line)) {
    if (!isSecretKey(match[2]!)) continue;
    const span = valueSpan(line, match.index + match[0].length, ' \t');
    spans.push(span);
    keyColon.lastIndex = Math.max(keyColon.lastIndex, span[1]);
  }
  return spans;
}

function positionsOf(text: string, char: string): number[] {
  const positions: number[] = [];
  for (let i = text.indexOf(char); i >= 0; i = text.indexOf(char, i + 1)) positions.push(i);
  return positions;
}

// The index of the first entry of the sorted `positions` that is ≥ `target` (its length if none).
function firstAtOrAfter(positions: readonly number[], target: number): number {
  let low = 0;
  let high = positions.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (positions[mid]! < target) low = mid + 1;
    else high = mid;
  }
  return low;
}

// The span of a value starting at `start`: inside its quotes when quoted (a backslash
// escapes, as in libpq and JSON; an unclosed quote runs to the end of the line), else up
// to the first of `stops`.
const VALUE_END = /[\s"'`,;&)}\]\\]/;

function valueSpan(line: string, start: number, stops: string): Span {
  const quote = line[start];
  if (quote === "'" || quote === '"' || quote === '`') {
    // The closing quote is one followed by a space, a separator or the end: a quote inside
    // the value (escaped once, or twice once the text is itself JSON-quoted) does not end it.
    let i = start + 1;
    while (i < line.length) {
      if (line[i] === '\\') i += 2;
      else if (line[i] === quote && (i + 1 >= line.length || VALUE_END.test(line[i + 1]!))) break;
      else i++;
    }
    return [start + 1, Math.min(i, line.length)];
  }
  let end = start;
  while (end < line.length && !stops.includes(line[end]!)) end++;
  return [start, end];
}

function redactSpans(line: string, spans: Span[]): string {
  const sorted = spans.filter(([start, end]) => end > start).sort((a, b) => a[0] - b[0]);
  let out = '';
  let cursor = 0;
  for (const [start, end] of sorted) {
    if (end <= cursor) continue;
    out += line.slice(cursor, Math.max(start, cursor));
    if (start >= cursor || !out.endsWith(REDACTED)) out += REDACTED;
    cursor = end;
  }
  return out + line.slice(cursor);
}

/**
 * Redacts a JSON text (a log line) string by string: every string literal goes through
 * {@link redactUrl}, and the value of a secret key (`"password": "…"`) is replaced whole.
 * The result is still valid JSON.
 */
export function redactJsonText(json: string): string {
  let previousKey: string | null = null;
  let previousEnd = -1;
  return json.replace(/"(?:[^"\\]|\\.)*"/g, (literal, offset: number) => {
    const between = json.slice(previousEnd, offset);
    const isValueOfSecret = previousKey !== null && /^\s*:\s*$/.test(between) && isSecretKey(previousKey);
    let text: string;
    try {
      text = JSON.parse(literal) as string;
    } catch {
      text = literal.slice(1, -1);
    }
    previousKey = text;
    previousEnd = offset + literal.length;
    if (isValueOfSecret) {
      previousKey = null;
      return JSON.stringify(REDACTED);
    }
    const redacted = redactUrl(text);
    return redacted === text ? literal : JSON.stringify(redacted);
  });
}
