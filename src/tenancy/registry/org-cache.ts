import type { Org } from '../org.js';

interface CacheEntry {
  expiresAt: number;
  value: Promise<Org | null>;
  // The answer once `value` has settled with it (undefined before), so that a caller on a
  // hot path can read it without a turn of the event loop.
  answer: Org | null | undefined;
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

  /**
   * The cached answer for `slug` if it is fresh at `now` and has arrived: the org, or null
   * (not registered); undefined otherwise. Only slugs that passed validation are cached,
   * so a hit needs no second check of the string.
   */
  settled(slug: string, now: number): Org | null | undefined {
    const cached = this.#entries.get(slug);
    return cached !== undefined && cached.expiresAt > now ? cached.answer : undefined;
  }

  /** Keeps a lookup's answer for the TTL, unless it fails or a change lands before it settles. */
  remember(slug: string, value: Promise<Org | null>, now: number): void {
    if (this.#ttlMs <= 0) return;
    const generation = this.#generation;
    const entry: CacheEntry = { expiresAt: now + this.#ttlMs, value, answer: undefined };
    this.#entries.set(slug, entry);
    const drop = () => {
      if (this.#entries.get(slug) === entry) this.#entries.delete(slug);
    };
    value.then((answer) => {
      if (generation !== this.#generation) drop();
      else entry.answer = answer;
    }, drop);
  }

  /** A change landed: forget every answer, and every lookup still running. */
  forget(): void {
    this.#generation++;
    this.#entries.clear();
  }
}
