import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OrgRegistry } from '../../src/index.js';
import { createLogger, type Logger } from '../../src/reporting/logger.js';
import { connect } from '../../src/tenancy/drivers/index.js';
import { closedPort } from '../support/net.js';
import { leakedPieces, SECRET_URL_CASES } from './secret-urls.js';

const PASSWORD = 'Sup3r-s3cret-pw';
const URL_WITH_PASSWORD = `postgres://app:${PASSWORD}@db.internal:5432/acme`;
const REDACTED = 'postgres://app:***@db.internal:5432/acme';

function capture(): { logger: Logger; lines(): Array<Record<string, unknown>>; text(): string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('createLogger', () => {
  it('redacts URL passwords in the message, format arguments, fields, arrays and bindings', () => {
    const out = capture();
    out.logger.info(`opening ${URL_WITH_PASSWORD}`);
    out.logger.info('opening %s now', URL_WITH_PASSWORD);
    out.logger.info(
      {
        url: URL_WITH_PASSWORD,
        nested: { deeper: { list: [`mysql://root:${PASSWORD}@127.0.0.1/x`, 3, null] } },
        parsed: new URL(URL_WITH_PASSWORD),
        note: `retrying sqlite:/tmp/a.db then ${URL_WITH_PASSWORD} again`,
      },
      'pool built',
    );
    out.logger.child({ tenant: 'acme', dsn: URL_WITH_PASSWORD }).warn('child line');

    const text = out.text();
    expect(text).not.toContain(PASSWORD);
    const [plain, formatted, fields, child] = out.lines();
    expect(plain!.msg).toBe(`opening ${REDACTED}`);
    expect(formatted!.msg).toBe(`opening ${REDACTED} now`);
    expect(fields).toMatchObject({
      msg: 'pool built',
      url: REDACTED,
      nested: { deeper: { list: ['mysql://root:***@127.0.0.1/x', 3, null] } },
      parsed: REDACTED,
      note: `retrying sqlite:/tmp/a.db then ${REDACTED} again`,
    });
    expect(child).toMatchObject({ tenant: 'acme', dsn: REDACTED, msg: 'child line', level: 40 });
  });

  it('redacts serialized errors: message, stack, own fields and causes', () => {
    const out = capture();
    const cause = new Error(`could not reach ${URL_WITH_PASSWORD}`);
    const err = Object.assign(new Error(`pool for ${URL_WITH_PASSWORD} failed`, { cause }), {
      url: URL_WITH_PASSWORD,
    });
    out.logger.error(err);
    out.logger.error({ err, context: { attempt: 2 } }, 'giving up');

    expect(out.text()).not.toContain(PASSWORD);
    const [bare, wrapped] = out.lines();
    expect(bare!.msg).toBe(`pool for ${REDACTED} failed`);
    const serialized = wrapped!.err as Record<string, unknown>;
    expect(serialized.type).toBe('Error');
    expect(serialized.message).toContain(REDACTED);
    expect(serialized.message).toContain(`could not reach ${REDACTED}`);
    expect(serialized.stack).toContain(REDACTED);
    expect(serialized.url).toBe(REDACTED);
    expect(wrapped!.context).toEqual({ attempt: 2 });
  });

  it("joins a cause's message to the error's once, not when the error's message quotes it", () => {
    const out = capture();
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:5999');
    const quoting = new Error('tenant x: got connect ECONNREFUSED 127.0.0.1:5999', { cause: refused });
    const outer = new Error('provision failed', { cause: quoting });
    out.logger.error({ err: outer }, 'failed');
    expect((out.lines()[0]!.err as { message: string }).message).toBe(
      'provision failed: tenant x: got connect ECONNREFUSED 127.0.0.1:5999',
    );
    // An error quoting its cause redacted (as TenantConnectionError does) quotes it still.
    const secret = new Error(`cannot open ${URL_WITH_PASSWORD}`);
    const redacted = new Error(`tenant y: got cannot open ${URL_WITH_PASSWORD.replace(PASSWORD, '***')}`, {
      cause: secret,
    });
    out.logger.error({ err: redacted }, 'failed');
    expect((out.lines()[1]!.err as { message: string }).message).toBe(
      `tenant y: got cannot open ${REDACTED}`,
    );
  });

  it('redacts password= parameters and fields named password', () => {
    const out = capture();
    out.logger.info(
      {
        dsn: `postgres://db.internal/acme?sslmode=require&password=${PASSWORD}`,
        libpq: `host=db user=app password=${PASSWORD} dbname=acme`,
        config: { host: 'db', user: 'app', password: PASSWORD, port: 5432 },
      },
      `connecting with password=${PASSWORD}`,
    );
    expect(out.text()).not.toContain(PASSWORD);
    expect(out.lines()[0]).toMatchObject({
      msg: 'connecting with password=***',
      dsn: 'postgres://db.internal/acme?sslmode=require&password=***',
      libpq: 'host=db user=app password=*** dbname=acme',
      config: { host: 'db', user: 'app', password: '***', port: 5432 },
    });
  });

  it('keeps values that carry no password as they are', () => {
    const out = capture();
    out.logger.info({ url: 'postgres://app@db/acme', n: 5, ok: true, when: new Date(0) }, 'plain');
    expect(out.lines()[0]).toMatchObject({
      url: 'postgres://app@db/acme',
      n: 5,
      ok: true,
      when: '1970-01-01T00:00:00.000Z',
    });
  });

  it('does not loop on circular objects', () => {
    const out = capture();
    const a: Record<string, unknown> = { url: URL_WITH_PASSWORD };
    a.self = a;
    out.logger.info({ a }, 'circular');
    expect(out.text()).not.toContain(PASSWORD);
    expect(out.lines()[0]).toMatchObject({ a: { url: REDACTED, self: '[Circular]' } });
  });
});

describe('a failed connect with a password in the URL', () => {
  it('leaves the password out of the errors and of the log lines that report them', async () => {
    const port = await closedPort();
    const urls = [
      `postgres://app:${PASSWORD}@127.0.0.1:${port}/acme`,
      `mysql://app:${PASSWORD}@127.0.0.1:${port}/acme`,
    ];
    const errors: Error[] = [];
    for (const url of urls) {
      errors.push(await failure(connect(url, { connectTimeoutMs: 2000 })));
      errors.push(await failure(OrgRegistry.open(url, { connectTimeoutMs: 2000 })));
    }
    errors.push(await failure(OrgRegistry.open(`redis://app:${PASSWORD}@127.0.0.1:${port}`)));

    const out = capture();
    for (const [i, err] of errors.entries()) {
      for (const text of [err.message, String(err.stack), String(err)]) expect(text).not.toContain(PASSWORD);
      out.logger.error({ err, attempt: i }, 'registry unreachable');
      out.logger.error(err);
    }
    // The log must still say which server failed, only without the secret.
    out.logger.warn({ url: urls[0] }, 'tried');
    const text = out.text();
    expect(out.lines()).toHaveLength(errors.length * 2 + 1);
    expect(text).toContain('ECONNREFUSED');
    expect(text).toContain(`postgres://app:***@127.0.0.1:${port}/acme`);
    expect(text).not.toContain(PASSWORD);
  });
});

describe('a trace-level logger and every credential form', () => {
  it.each(SECRET_URL_CASES)('$name: no piece of the secret in any line', ({ url, secret }) => {
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        chunks.push(String(chunk));
        callback();
      },
    });
    const logger = createLogger({ level: 'trace', destination });
    const cause = new Error(`connect failed for ${url}`);
    const error = Object.assign(new Error(`pool for ${url} broke`, { cause }), { input: url });
    logger.trace(`opening ${url}`);
    logger.trace('opening %s then %s', url, `'${url}'`);
    logger.debug({ url, config: { connectionString: url, sslpassword: secret, password: secret } }, 'config');
    logger.info({ err: error }, 'pool failed');
    logger.warn({ attempts: [{ url }], note: `retry ${url} in 1s` }, 'retrying');
    logger.child({ tenant: 'acme', dsn: url }).trace('child line');
    logger.error(error);

    const text = chunks.join('');
    expect(text.split('\n').filter(Boolean)).toHaveLength(7);
    for (const line of text.split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
    expect(leakedPieces(text, secret)).toEqual([]);
    expect(text).toContain('127.0.0.1');
  });
});
