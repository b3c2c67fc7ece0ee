import { ValidationError } from '../../reporting/errors.js';
import type { Row } from '../drivers/driver.js';
import { defaultSchemaName } from '../org.js';
import { ORGS_TABLE } from './sql-dialect.js';

/** How the collision report reads the registry: a read statement and the dialect's placeholders. */
export interface RegistryReader {
  param(n: number): string;
  query(sql: string, params: unknown[]): Promise<Row[]>;
}

/**
 * The error for a unique violation on add or update: the slug (on add) or the schema
 * name, saying which, and which org holds the schema. A default schema name (the slug,
 * '-' turned to '_') collides with the slug spelled with '_': the message says so, since
 * the caller never named the schema.
 */
export async function collisionError(
  reader: RegistryReader,
  org: { slug: string; schemaName?: string | null | undefined },
  adding: boolean,
  cause: unknown,
): Promise<ValidationError> {
  const p = (n: number) => reader.param(n);
  if (
    adding &&
    (await reader.query(`SELECT slug FROM ${ORGS_TABLE} WHERE slug = ${p(1)}`, [org.slug])).length
  ) {
    return new ValidationError(
      'slug',
      `Expected a new slug, got ${JSON.stringify(org.slug)} which is already registered`,
      { cause },
    );
  }
  const schema = org.schemaName ?? defaultSchemaName(org.slug);
  const rows = await reader.query(
    `SELECT slug FROM ${ORGS_TABLE} WHERE schema_name = ${p(1)} AND slug <> ${p(2)}`,
    [schema, org.slug],
  );
  const holder = rows[0] ? `, the schema of org ${JSON.stringify(String(rows[0].slug))}` : '';
  const derived =
    org.schemaName == null
      ? ` (the default for slug ${JSON.stringify(org.slug)}: '-' becomes '_', so slugs that differ only there share it; give one a schemaName)`
      : '';
  return new ValidationError(
    'schemaName',
    `Expected a schemaName no other org uses, got ${JSON.stringify(schema)}${holder}${derived}`,
    { cause },
  );
}
