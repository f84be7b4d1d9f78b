import type { CachedResponse } from "./entry.js";

/**
 * Where stored responses live. The memory tier answers synchronously (a hit must not cost a trip
 * through the event loop); the disk tier answers with a promise. Writes never make the caller
 * wait: a tier that writes in the background owns that work and its failures.
 */
export interface CacheStore {
  open(): Promise<void>;
  get(key: string): CachedResponse | undefined | Promise<CachedResponse | undefined>;
  set(e: CachedResponse): void;
  /** Removes every variant of a URL; returns how many. */
  deleteUrl(url: string): number;
  hasUrl(url: string): boolean;
  /** Every URL with at least one stored variant (a purge by prefix walks them). */
  urls(): Iterable<string>;
  /** Vary field names of every URL held, to find variants after a restart. */
  varyIndex(): Iterable<[url: string, names: string[]]>;
  readonly entries: number;
  readonly bytes: number;
  /** Waits for background writes, then releases what the tier holds open. */
  close(): Promise<void>;
}

/** A memory tier in front of a disk tier: hits on disk are promoted, writes go to both. */
export class TieredStore implements CacheStore {
  constructor(
    readonly memory: CacheStore,
    readonly disk: CacheStore,
  ) {}

  open(): Promise<void> {
    return this.disk.open();
  }

  get(key: string): CachedResponse | undefined | Promise<CachedResponse | undefined> {
    const hit = this.memory.get(key);
    if (hit !== undefined) return hit;
    const d = this.disk.get(key);
    if (d === undefined) return undefined;
    return Promise.resolve(d).then((e) => {
      if (e) this.memory.set(e);
      return e;
    });
  }

  set(e: CachedResponse): void {
    this.memory.set(e);
    this.disk.set(e);
  }

  deleteUrl(url: string): number {
    // A URL's variants are usually in both tiers: count the larger set, not both.
    return Math.max(this.memory.deleteUrl(url), this.disk.deleteUrl(url));
  }

  hasUrl(url: string): boolean {
    return this.memory.hasUrl(url) || this.disk.hasUrl(url);
  }

  *urls(): Iterable<string> {
    yield* this.memory.urls();
    for (const url of this.disk.urls()) if (!this.memory.hasUrl(url)) yield url;
  }

  *varyIndex(): Iterable<[string, string[]]> {
    yield* this.disk.varyIndex();
  }

  get entries(): number {
    return this.memory.entries;
  }

  get bytes(): number {
    return this.memory.bytes;
  }

  async close(): Promise<void> {
    await Promise.all([this.memory.close(), this.disk.close()]);
  }
}
