/**
 * Opening one connection of a pool: resolving the secret (once, and again after a
 * lifetime recycle so a rotated secret is picked up) and calling the driver.
 */

import type { RawConnection } from './drivers/driver.js';
import { connect } from './drivers/index.js';

/** Opens raw connections to one database whose URL is a secret resolved on demand. */
export class PoolConnector {
  readonly #resolveUrl: () => Promise<string>;
  readonly #connectTimeoutMs: number;
  // The resolved URL, shared by concurrent connects; cleared on failure so the next
  // connect retries the resolver instead of repeating a cached error.
  #url: Promise<string> | undefined;

  /**
   * @param url the URL resolved when the pool was built
   * @param resolveUrl resolves it again, once the pool forgets it
   */
  constructor(url: string, resolveUrl: () => Promise<string>, connectTimeoutMs: number) {
    this.#url = Promise.resolve(url);
    this.#resolveUrl = resolveUrl;
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  /** Opens one connection; rejects with the resolver's or the driver's (scrubbed) error. */
  async open(): Promise<RawConnection> {
    this.#url ??= this.#resolveUrl();
    const url = this.#url;
    try {
      return await connect(await url, { connectTimeoutMs: this.#connectTimeoutMs });
    } catch (err) {
      if (this.#url === url) this.#url = undefined;
      throw err;
    }
  }

  /** Forgets the resolved URL, so the next connection resolves the secret again. */
  forgetUrl(): void {
    this.#url = undefined;
  }
}
