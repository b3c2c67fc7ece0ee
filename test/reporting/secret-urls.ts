/**
 * Connection strings that carry credentials in every form the drivers accept, with the
 * secret each hides and the parts that must stay readable once redacted. Shared by the
 * redaction, logger and CLI tests.
 */

/** One connection string, its secret, and what redaction must leave visible. */
export interface SecretUrlCase {
  readonly name: string;
  readonly url: string;
  readonly secret: string;
  /** Non-secret parts (user, host, database) that a redacted connection string still shows. */
  readonly visible: readonly string[];
}

export const SECRET_URL_CASES: readonly SecretUrlCase[] = [
  {
    name: "postgres: '@' in the user, unencoded",
    url: 'postgres://rel@srv:Zx7PwAz@127.0.0.1:5432/appdb',
    secret: 'Zx7PwAz',
    visible: ['rel@srv', '127.0.0.1:5432', 'appdb'],
  },
  {
    name: 'postgres: a quote in the password',
    url: "postgres://rel:Qu'ote9Pw@127.0.0.1/appdb",
    secret: "Qu'ote9Pw",
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: "postgres: '@' in the user and a quote in the password",
    url: "postgres://rel@srv:Zx'7PwAz@127.0.0.1/appdb",
    secret: "Zx'7PwAz",
    visible: ['rel@srv', '127.0.0.1', 'appdb'],
  },
  {
    name: 'postgres: a space in the password',
    url: 'postgres://rel:Spa ce7Pw@127.0.0.1/appdb',
    secret: 'Spa ce7Pw',
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: "postgres: '\"' in the password",
    url: 'postgres://rel:Dq"uote7Pw@127.0.0.1/appdb',
    secret: 'Dq"uote7Pw',
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: 'postgres: a percent-encoded password',
    url: 'postgres://rel:Pct%40Sec9ret@127.0.0.1/appdb',
    secret: 'Pct%40Sec9ret',
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: 'postgres: ?sslpassword=',
    url: 'postgres://rel@127.0.0.1/appdb?sslmode=require&sslpassword=Kp9SslSecret',
    secret: 'Kp9SslSecret',
    visible: ['rel', '127.0.0.1', 'appdb', 'sslmode=require'],
  },
  {
    name: 'postgres: ?password= in the query string',
    url: 'postgres://rel@127.0.0.1/appdb?password=Qp4QuerySecret&application_name=jobs',
    secret: 'Qp4QuerySecret',
    visible: ['rel', '127.0.0.1', 'appdb', 'application_name=jobs'],
  },
  {
    name: 'postgres: ?sslkey= (the client key)',
    url: 'postgres://rel@127.0.0.1/appdb?sslkey=/run/Ck8ClientKey.pem',
    secret: '/run/Ck8ClientKey.pem',
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: 'mysql: an unencoded @ in the user',
    url: 'mysql://rel@srv:My7SqlSecret@127.0.0.1:3306/appdb',
    secret: 'My7SqlSecret',
    visible: ['rel@srv', '127.0.0.1:3306', 'appdb'],
  },
  {
    name: 'mariadb: a quote and a space in the password, a second factor in the query',
    url: "mariadb://rel:Maz'riaq 7Pwx@127.0.0.1/appdb?password2=Mfa2Secret",
    secret: "Maz'riaq 7Pwx",
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: 'mysql: a second factor password in the query',
    url: 'mysql://rel@127.0.0.1/appdb?password2=Mfa2Secret',
    secret: 'Mfa2Secret',
    visible: ['rel', '127.0.0.1', 'appdb'],
  },
  {
    name: "libpq key/value: password='a b' after the first words",
    url: "host=127.0.0.1 user=rel dbname=appdb password='kv Sec7ret Wq9z'",
    secret: 'kv Sec7ret Wq9z',
    visible: ['host=127.0.0.1', 'user=rel', 'dbname=appdb'],
  },
  {
    name: 'libpq key/value: quoted with an escaped quote, spaces around =',
    url: "host=127.0.0.1 password = 'it\\'s Kv9 Zsecr8t' user=rel dbname=appdb",
    secret: "it\\'s Kv9 Zsecr8t",
    visible: ['host=127.0.0.1', 'user=rel', 'dbname=appdb'],
  },
  {
    name: 'libpq key/value: unquoted',
    url: 'host=127.0.0.1 user=rel password=Plain9Secret dbname=appdb',
    secret: 'Plain9Secret',
    visible: ['host=127.0.0.1', 'user=rel', 'dbname=appdb'],
  },
];

/**
 * The pieces of `secret` worth looking for in output: the whole, its encoded forms, and
 * every run of 4+ letters and digits (a password cut at a quote or a space leaks a piece).
 */
export function secretPieces(secret: string): string[] {
  const pieces = new Set([secret, encodeURIComponent(secret), encodeURI(secret)]);
  for (const run of secret.match(/[A-Za-z0-9]{4,}/g) ?? []) pieces.add(run);
  return [...pieces];
}

/** The pieces of `secret` that appear in `text` (empty when none leaked). */
export function leakedPieces(text: string, secret: string): string[] {
  return secretPieces(secret).filter((piece) => text.includes(piece));
}
