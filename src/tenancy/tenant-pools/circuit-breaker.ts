/**
 * Per-tenant circuit breaker on connection attempts. A tenant whose database refuses
 * connections would otherwise keep taking budget slots for attempts that fail, each one
 * possibly waiting out `connectTimeoutMs` while other tenants queue behind it. After
 * `threshold` failures in a row it fails fast with {@link TenantUnavailableError} for
 * `cooldownMs`; after that, attempts are let through again and the first success closes
 * the circuit (one more failure opens it again at once).
 */
import { TenantUnavailableError } from '../../reporting/errors.js';

interface Circuit {
  failures: number;
  openUntil: number;
  lastError: unknown;
}

/** Connect failures in a row per key (a tenant slug, or the shared schema pool). */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  // Only keys with failures are kept, so healthy tenants cost nothing here.
  readonly #circuits = new Map<string, Circuit>();

  constructor(threshold: number, cooldownMs: number) {
    this.#threshold = threshold;
    this.#cooldownMs = cooldownMs;
  }

  /**
   * Throws {@link TenantUnavailableError} for `slug` while the key's circuit is open (the
   * key is the slug, except for the shared schema pool whose circuit all its tenants share).
   */
  check(key: string, slug = key): void {
    const circuit = this.#circuits.get(key);
    if (circuit && circuit.openUntil > Date.now()) {
      throw new TenantUnavailableError(slug, circuit.failures, circuit.openUntil, {
        cause: circuit.lastError,
      });
    }
  }

  /** A connection was opened: the key's failures are forgotten. */
  succeeded(key: string): void {
    this.#circuits.delete(key);
  }

  /**
   * A connection attempt failed. Returns the error to fail waiters with when this failure
   * opened the circuit, else undefined.
   */
  failed(key: string, error: unknown, slug = key): TenantUnavailableError | undefined {
    const circuit = this.#circuits.get(key) ?? { failures: 0, openUntil: 0, lastError: undefined };
    circuit.failures++;
    circuit.lastError = error;
    this.#circuits.set(key, circuit);
    if (circuit.failures < this.#threshold) return undefined;
    circuit.openUntil = Date.now() + this.#cooldownMs;
    return new TenantUnavailableError(slug, circuit.failures, circuit.openUntil, { cause: error });
  }

  /** The circuits open at `now`, the soonest to let attempts through again first. */
  open(now = Date.now()): { key: string; failures: number; retryAt: number }[] {
    const open: { key: string; failures: number; retryAt: number }[] = [];
    for (const [key, circuit] of this.#circuits)
      if (circuit.openUntil > now) open.push({ key, failures: circuit.failures, retryAt: circuit.openUntil });
    return open.sort((a, b) => a.retryAt - b.retryAt || a.key.localeCompare(b.key));
  }

  /** Forgets a key (its pool was invalidated: a fixed configuration deserves a fresh try). */
  reset(key: string): void {
    this.#circuits.delete(key);
  }
}
