import type { Org } from '../org.js';

interface CacheEntry {
  expiresAt: number;
  value: Promise<Org | null>;
}

/**
 * The registry's lookup cache: a slug's answer (the lookup's promise, so concurrent
 * lookups share one statement) until it expires. Every change to the orgs table clears
 * it and bumps a generation, so a lookup that was already running when the change landed
 * is not kept: its answer may predate the change.
 */
export class OrgCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, CacheEntry>();
  #generation = 0;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** The cached answer for `slug`, if one is fresh at `now`. */
  get(slug: string, now: number): Promise<Org | null> | undefined {
    const cached = this.#entries.get(slug);
    return cached && cached.expiresAt > now ? cached.value : undefined;
  }

  /** Keeps a lookup's answer for the TTL, unless it fails or a change lands before it settles. */
  remember(slug: string, value: Promise<Org | null>, now: number): void {
    if (this.#ttlMs <= 0) return;
    const generation = this.#generation;
    this.#entries.set(slug, { expiresAt: now + this.#ttlMs, value });
    const drop = () => {
      if (this.#entries.get(slug)?.value === value) this.#entries.delete(slug);
    };
    value.then(() => generation !== this.#generation && drop(), drop);
  }

  /** A change landed: forget every answer, and every lookup still running. */
  forget(): void {
    this.#generation++;
    this.#entries.clear();
  }
}
