import { LRUCache } from "lru-cache";
import { type CachedResponse, preparedHead } from "./entry.js";
import type { CacheStore } from "./store.js";

/** Header bytes counted against the budget besides the body (names, values, bookkeeping). */
const OVERHEAD = 512;

export function entrySize(e: CachedResponse): number {
  let n = e.body.length + OVERHEAD + e.key.length;
  for (const s of e.flat) n += s.length;
  return n + (preparedHead(e)?.text.length ?? 0);
}

/**
 * The memory tier: bounded in bytes, least recently used out first. Keeps an index from URL to
 * its variants' keys, so a purge or an invalidation finds every Vary variant.
 */
export class MemoryStore implements CacheStore {
  private readonly lru: LRUCache<string, CachedResponse>;
  private readonly byUrl = new Map<string, Set<string>>();

  constructor(maxBytes: number) {
    this.lru = new LRUCache<string, CachedResponse>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: entrySize,
      dispose: (e, key) => {
        const set = this.byUrl.get(e.url);
        set?.delete(key);
        if (set?.size === 0) this.byUrl.delete(e.url);
      },
    });
  }

  async open(): Promise<void> {}

  get(key: string): CachedResponse | undefined {
    return this.lru.get(key);
  }

  set(e: CachedResponse): void {
    if (entrySize(e) > this.lru.maxSize) return;
    this.lru.set(e.key, e);
    if (!this.lru.has(e.key)) return;
    let set = this.byUrl.get(e.url);
    if (!set) this.byUrl.set(e.url, (set = new Set()));
    set.add(e.key);
  }

  hasUrl(url: string): boolean {
    return this.byUrl.has(url);
  }

  deleteUrl(url: string): number {
    const keys = [...(this.byUrl.get(url) ?? [])];
    for (const k of keys) this.lru.delete(k);
    this.byUrl.delete(url);
    return keys.length;
  }

  urls(): Iterable<string> {
    return this.byUrl.keys();
  }

  *varyIndex(): Iterable<[string, string[]]> {
    for (const e of this.lru.values()) yield [e.url, e.varyNames];
  }

  get entries(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}
