import {
  ClosedError,
  ConfigError,
  describe,
  UnknownTenantError,
  ValidationError,
} from '../../reporting/errors.js';
import { databaseKindOf } from '../drivers/driver.js';
import type { DatabaseKind, RawConnection } from '../drivers/index.js';
import {
  applyOrgPatch,
  type Org,
  type OrgInput,
  type OrgPatch,
  SLUG_PATTERN,
  type ValidatedOrg,
  validateOrgInput,
  validateSlug,
} from '../org.js';
import type { SecretsResolver } from '../secrets.js';
import { collisionError, type RegistryReader } from './collision.js';
import {
  type OrgCountOptions,
  type OrgListOptions,
  type OrgRegistryOptions,
  type ResolvedOrgRegistryOptions,
  resolveOrgRegistryOptions,
  validateListOptions,
} from './options.js';
import { OrgCache } from './org-cache.js';
import { type ProvisionResult, provisionDatabase, provisionSchema } from './provision.js';
import { SerialConnection } from './serial-connection.js';
import {
  type Dialect,
  dialectFor,
  inTransaction,
  ORG_COLUMNS,
  ORGS_TABLE,
  orgToParams,
  rowToOrg,
} from './sql-dialect.js';

export type {
  OrgCountOptions,
  OrgListOptions,
  OrgRegistryOptions,
  ResolvedOrgRegistryOptions,
} from './options.js';

const SELECT_ORG = `SELECT ${ORG_COLUMNS.join(', ')} FROM ${ORGS_TABLE}`;
// Slugs per statement of findMany: well under every driver's limit on parameters.
const FIND_MANY_CHUNK = 500;

/**
 * The orgs table (`fleet_orgs`) on Postgres, MySQL or SQLite, chosen by the URL's scheme.
 * It holds one connection and runs its statements one after the other on it; a dead
 * connection is replaced on the next call.
 *
 * ```ts
 * await using registry = await OrgRegistry.open('postgres://app@db/fleet');
 * await registry.migrate();
 * await registry.add({ slug: 'acme' });
 * await registry.provision('acme');
 * ```
 */
export class OrgRegistry implements AsyncDisposable {
  /** The registry database's kind. */
  readonly kind: DatabaseKind;
  /**
   * The registry's own connection URL, as given to `open`. It carries the password:
   * never log it or put it in a message (`redactUrl` it first). TenantPools builds the
   * shared schema-mode pool from it.
   */
  readonly databaseUrl: string;
  /** The resolver used for orgs' `databaseUrl` references. */
  readonly secrets: SecretsResolver;

  readonly #options: ResolvedOrgRegistryOptions;
  readonly #dialect: Dialect;
  readonly #cache: OrgCache;
  /** Read statements for the collision report (collision.ts). */
  readonly #reader: RegistryReader = {
    param: (n) => this.#dialect.param(n),
    query: (sql, params) => this.#run((conn) => conn.query(sql, params), true),
  };
  // Statements run one at a time on the single connection; transactions need that anyway.
  readonly #connection: SerialConnection;
  #closing: Promise<void> | undefined;

  private constructor(url: string, kind: DatabaseKind, options: ResolvedOrgRegistryOptions) {
    this.databaseUrl = url;
    this.kind = kind;
    this.secrets = options.secrets;
    this.#options = options;
    this.#dialect = dialectFor(kind);
    this.#cache = new OrgCache(options.cacheTtlMs);
    this.#connection = new SerialConnection({
      url,
      what: 'registry',
      connectTimeoutMs: options.connectTimeoutMs,
    });
  }

  /**
   * Opens the registry at `url` (`postgres://`, `mysql://` or `sqlite:PATH`) and checks
   * that it answers. Throws {@link ConfigError} for any other scheme, before connecting,
   * and {@link DatabaseConnectionError} (the driver's error as `cause`, no password in the
   * message) when the database cannot be reached: bad host, refused, no such database.
   */
  static async open(url: string, options: OrgRegistryOptions = {}): Promise<OrgRegistry> {
    if (typeof url !== 'string')
      throw new ConfigError('url', `Expected the registry URL to be a string, got ${describe(url)}`);
    const kind = databaseKindOf(url);
    const registry = new OrgRegistry(url, kind, resolveOrgRegistryOptions(options));
    try {
      await registry.#run((conn) => conn.ping(), true);
    } catch (err) {
      await registry.close();
      throw err;
    }
    return registry;
  }

  /**
   * Creates `fleet_orgs` and its indexes when missing, among them the unique index that
   * gives every schema one org. Idempotent, and safe when two processes run it at once.
   * On a registry where orgs already share a schema it throws {@link ValidationError}
   * (`field: 'schemaName'`) naming them, and changes nothing.
   */
  async migrate(): Promise<void> {
    await this.#run((conn) => this.#dialect.migrate(conn));
    this.#options.logger.info({ kind: this.kind, table: ORGS_TABLE }, 'registry migrated');
  }

  /** Whether `fleet_orgs` exists (a read: it creates nothing, unlike {@link migrate}). */
  async isMigrated(): Promise<boolean> {
    return (await this.#run((conn) => conn.query(this.#dialect.findTable), true)).length > 0;
  }

  /**
   * Adds an org. Throws {@link ValidationError} for a bad field, a duplicate slug
   * (`field: 'slug'`), a schema another org has (`field: 'schemaName'`, naming that org),
   * or schema mode on a MySQL or SQLite registry (`field: 'storageMode'`).
   */
  async add(input: OrgInput): Promise<Org> {
    const org: Org = Object.freeze({ ...this.#validate(validateOrgInput(input)), createdAt: new Date() });
    const d = this.#dialect;
    const placeholders = ORG_COLUMNS.map((_, i) => d.param(i + 1)).join(', ');
    try {
      await this.#run((conn) =>
        conn.query(
          `INSERT INTO ${ORGS_TABLE} (${ORG_COLUMNS.join(', ')}) VALUES (${placeholders})`,
          orgToParams(org),
        ),
      );
    } catch (err) {
      if (d.isDuplicateKey(err))
        throw await collisionError(this.#reader, { slug: org.slug, schemaName: input.schemaName }, true, err);
      throw err;
    } finally {
      this.#forget();
    }
    return org;
  }

  /** The org with this slug; throws {@link UnknownTenantError} when there is none. */
  async get(slug: string): Promise<Org> {
    const org = await this.find(slug);
    if (org === null) throw new UnknownTenantError(slug);
    return org;
  }

  /** The org with this slug, or null. Answers from the lookup cache when it can. */
  find(slug: string): Promise<Org | null> {
    try {
      validateSlug(slug);
    } catch {
      // A string that can never be a slug is simply not registered.
      return this.#closing ? Promise.reject(new ClosedError('OrgRegistry')) : Promise.resolve(null);
    }
    const now = Date.now();
    const cached = this.#closing ? undefined : this.#cache.get(slug, now);
    if (cached) return cached;
    const value = this.#run((conn) => this.#select(conn, slug, false), true);
    this.#cache.remember(slug, value, now);
    return value;
  }

  /**
   * The org with this slug when the lookup cache already holds its answer (null: not
   * registered), without a statement or a turn of the event loop; undefined when `find`
   * would have to ask the database (or wait for a lookup under way).
   */
  cached(slug: string): Org | null | undefined {
    return this.#closing ? undefined : this.#cache.settled(slug, Date.now());
  }

  /**
   * The orgs of many slugs at once, by slug (a slug not registered, or not a slug at
   * all, is absent): cached answers, then one statement per 500 slugs for the rest,
   * whose answers are cached as `find`'s would be. A worker that meets 10,000 tenants
   * loads them in 20 statements instead of 10,000.
   */
  async findMany(slugs: readonly string[]): Promise<Map<string, Org>> {
    const found = new Map<string, Org>();
    const now = Date.now();
    const missing: string[] = [];
    for (const slug of new Set(slugs)) {
      const cached = this.#closing ? undefined : this.#cache.get(slug, now);
      if (cached) {
        const org = await cached;
        if (org) found.set(slug, org);
      } else if (SLUG_PATTERN.test(slug)) missing.push(slug);
    }
    for (let i = 0; i < missing.length; i += FIND_MANY_CHUNK) {
      const chunk = missing.slice(i, i + FIND_MANY_CHUNK);
      const placeholders = chunk.map((_, k) => this.#dialect.param(k + 1)).join(', ');
      const orgs = this.#run(
        (conn) => conn.query(`${SELECT_ORG} WHERE slug IN (${placeholders})`, chunk),
        true,
      ).then((rows) => new Map(rows.map((row) => [String(row.slug), rowToOrg(row)] as const)));
      // Cached before the answer comes, so that a change landing meanwhile drops it (see OrgCache).
      for (const slug of chunk)
        this.#cache.remember(
          slug,
          orgs.then((bySlug) => bySlug.get(slug) ?? null),
          now,
        );
      for (const [slug, org] of await orgs) found.set(slug, org);
    }
    return found;
  }

  /** Orgs ordered by slug, optionally only active or inactive ones, a page at a time. */
  async list(options: OrgListOptions = {}): Promise<Org[]> {
    const { active, after, limit } = validateListOptions(options);
    const d = this.#dialect;
    const where: string[] = [];
    const params: unknown[] = [];
    if (active !== undefined) {
      params.push(active);
      where.push(`active = ${d.param(params.length)}`);
    }
    if (after !== undefined) {
      params.push(after);
      where.push(`slug > ${d.param(params.length)}`);
    }
    let sql = `${SELECT_ORG}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY slug`;
    if (limit !== undefined) {
      params.push(limit);
      sql += ` LIMIT ${d.param(params.length)}`;
    }
    const rows = await this.#run((conn) => conn.query(sql, params), true);
    return rows.map(rowToOrg);
  }

  /** How many orgs there are, optionally only active or inactive ones. */
  async count(options: OrgCountOptions = {}): Promise<number> {
    const { active } = validateListOptions(options);
    const sql = `SELECT COUNT(*) AS n FROM ${ORGS_TABLE}${active === undefined ? '' : ` WHERE active = ${this.#dialect.param(1)}`}`;
    const rows = await this.#run((conn) => conn.query(sql, active === undefined ? [] : [active]), true);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Changes an org's fields (never its slug or creation time) and returns it as stored.
   * The patched org is validated as a whole, under a row lock, so concurrent updates
   * from several processes do not lose each other's fields.
   */
  async update(slug: string, patch: OrgPatch): Promise<Org> {
    if (typeof patch !== 'object' || patch === null) {
      throw new ValidationError('patch', `Expected a patch object, got ${describe(patch)}`);
    }
    validateSlug(slug);
    const d = this.#dialect;
    try {
      return await this.#run((conn) =>
        inTransaction(this.#dialect, conn, async () => {
          const current = await this.#select(conn, slug, true);
          if (current === null) throw new UnknownTenantError(slug);
          const next: Org = Object.freeze({
            ...this.#validate(applyOrgPatch(current, patch)),
            createdAt: current.createdAt,
          });
          const columns = ORG_COLUMNS.slice(1, -1);
          const params = orgToParams(next).slice(1, -1);
          const set = columns.map((column, i) => `${column} = ${d.param(i + 1)}`).join(', ');
          await conn.query(`UPDATE ${ORGS_TABLE} SET ${set} WHERE slug = ${d.param(columns.length + 1)}`, [
            ...params,
            slug,
          ]);
          return next;
        }),
      );
    } catch (err) {
      if (d.isDuplicateKey(err))
        throw await collisionError(this.#reader, { slug, schemaName: patch.schemaName }, false, err);
      throw err;
    } finally {
      this.#forget();
    }
  }

  /** Marks an org inactive: it keeps its row and storage, and fan-outs skip it. */
  deactivate(slug: string): Promise<Org> {
    return this.update(slug, { active: false });
  }

  /**
   * Removes the org's row and forgets it in the lookup cache; resolves to the org as it
   * was. Throws {@link UnknownTenantError} when there is none. Its storage stays: the
   * schema (schema mode) or database (database mode) is not dropped, and neither are its
   * jobs in the queues (the CLI's `orgs remove --purge-jobs` purges those). A process
   * with its own registry may answer from its cache for up to its `cacheTtlMs`.
   */
  async remove(slug: string): Promise<Org> {
    validateSlug(slug);
    const d = this.#dialect;
    try {
      return await this.#run((conn) =>
        inTransaction(this.#dialect, conn, async () => {
          const current = await this.#select(conn, slug, true);
          if (current === null) throw new UnknownTenantError(slug);
          await conn.query(`DELETE FROM ${ORGS_TABLE} WHERE slug = ${d.param(1)}`, [slug]);
          return current;
        }),
      );
    } finally {
      this.#forget();
    }
  }

  /**
   * Creates the org's storage unless it exists: the quoted schema on the registry
   * database in schema mode; in database mode, resolves `databaseUrl` through the secrets
   * resolver and creates that database on its server (or the SQLite file). Idempotent,
   * also across processes: of several racing calls exactly one reports `created: true`.
   */
  async provision(slug: string): Promise<ProvisionResult> {
    const org = await this.#run((conn) => this.#select(conn, validateSlug(slug), false), true);
    if (org === null) throw new UnknownTenantError(slug);
    const log = this.#options.logger;
    if (org.storageMode === 'schema') {
      this.#validate(org);
      const target = org.schemaName as string;
      const created = await this.#run((conn) => provisionSchema(conn, target));
      log?.info({ slug, schema: target, created }, 'tenant schema provisioned');
      return { slug, storageMode: 'schema', kind: this.kind, target, created };
    }
    const url = await this.secrets.resolve(org.databaseUrl as string);
    const result = await provisionDatabase(slug, url, { connectTimeoutMs: this.#options.connectTimeoutMs });
    log?.info(
      { slug, kind: result.kind, target: result.target, created: result.created },
      'tenant database provisioned',
    );
    return { slug, storageMode: 'database', ...result };
  }

  /** Closes the connection after the statements already queued (up to `closeTimeoutMs`); idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#cache.forget();
      await this.#connection.close(this.#options.closeTimeoutMs);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #validate<T extends ValidatedOrg>(org: T): T {
    if (org.storageMode === 'schema' && this.kind !== 'postgres') {
      throw new ValidationError(
        'storageMode',
        `Expected storageMode 'database' on a ${this.kind} registry (schema mode needs a Postgres registry), got 'schema'`,
      );
    }
    return org;
  }

  #forget(): void {
    this.#cache.forget();
  }

  async #select(conn: RawConnection, slug: string, lock: boolean): Promise<Org | null> {
    const d = this.#dialect;
    const rows = await conn.query(`${SELECT_ORG} WHERE slug = ${d.param(1)}${lock ? d.forUpdate : ''}`, [
      slug,
    ]);
    return rows[0] ? rowToOrg(rows[0]) : null;
  }

  #run<T>(fn: (conn: RawConnection) => Promise<T>, read = false): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError('OrgRegistry'));
    // A read that failed because the connection died while idle runs once more on a
    // fresh one; a write does not, since it may have committed before the loss.
    return this.#connection.run(fn, read);
  }
}
