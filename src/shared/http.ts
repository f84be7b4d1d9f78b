import { decodeEntry, encodeEntry } from "../http/cache/codec.js";
import { deltaSeconds } from "../http/cache/directives.js";
import type { CachedResponse } from "../http/cache/entry.js";
import { currentAge, forbidsStale, secondaryKey } from "../http/cache/policy.js";
import type { CacheStore } from "../http/cache/store.js";
import type { Headers } from "../http/exchange.js";
import type { SharedRedis } from "./redis.js";

// Small HTTP responses shared between boxes, as a tier behind each box's memory (and disk).
//
// One Redis hash per URL, `gatehouse:v1:http:<url>`: field "vary" holds the response's Vary field
// names (a box that never saw the URL needs them to make the request's key), and each variant is a
// field of its own ("=" and the request's Vary values). So a purge of a URL, every variant with
// it, is one DEL, and a purge by prefix finds the URLs with SCAN MATCH. Fields cannot expire one by
// one (Redis 7.0), so each value carries its own expiry and a reader drops an expired one; the hash
// expires with its longest-lived variant. Entries are encoded as the disk tier writes them (with
// their body's SHA-256, checked on reading).

export const HTTP_PREFIX = "gatehouse:v1:http:";
/** Larger responses stay in the boxes' own tiers: Redis is for the many small ones (icons, API answers). */
export const MAX_SHARED_BODY = 64 * 1024;
/**
 * The longest an entry stays in Redis, whatever its freshness: Redis is a shared fast tier, not an
 * archive, and a box that finds nothing there fetches the response again once.
 */
const MAX_SHARED_SECONDS = 86_400;
/**
 * Vary fields whose values are few in an office (compression, language, media type). A response
 * that varies on anything else (User-Agent, Cookie) would grow its URL's hash without bound: it is
 * not shared.
 */
const SHARED_VARY = new Set(["accept-encoding", "accept-language", "accept"]);

export function httpKey(url: string): string {
  return HTTP_PREFIX + url;
}

/** The hash field of a variant: what its key adds to the URL (the request's Vary values). */
function variantField(key: string, url: string): string {
  return `=${key.slice(url.length)}`;
}

/**
 * How long an entry is kept in Redis, in ms; 0: not shared. Its freshness left, plus the staleness
 * it allows itself explicitly (stale-while-revalidate, stale-if-error) so other boxes can still
 * serve it as this one would; never the one-day allowance a box gives any copy while its origin
 * is down, which would keep every entry a day. An entry stale already is not shared.
 */
export function sharedLifetime(e: CachedResponse, now: number): number {
  if (e.body.length > MAX_SHARED_BODY || e.varyNames.some((n) => !SHARED_VARY.has(n))) return 0;
  const fresh = e.lifetime - currentAge(e, now);
  if (fresh <= 0) return 0;
  let allowance = 0;
  if (!forbidsStale(e.cc)) {
    for (const name of ["stale-while-revalidate", "stale-if-error"]) {
      const s = deltaSeconds(e.cc, name);
      if (typeof s === "number") allowance = Math.max(allowance, s);
    }
  }
  return Math.min(fresh + allowance, MAX_SHARED_SECONDS) * 1000;
}

/** The value of a variant: [8 bytes: epoch ms it expires][the entry as the disk tier stores it]. */
export function encodeShared(e: CachedResponse, expires: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeDoubleBE(expires, 0);
  return Buffer.concat([head, encodeEntry(e)]);
}

/** The entry a value holds under `key`; undefined when it is expired, of another key or not whole. */
export function decodeShared(value: Buffer, key: string, now: number): CachedResponse | undefined {
  if (value.length < 8 || !(value.readDoubleBE(0) > now)) return undefined;
  try {
    const e = decodeEntry(value.subarray(8));
    return e?.key === key ? e : undefined;
  } catch {
    // Not JSON where the metadata should be: not an entry of ours.
    return undefined;
  }
}

/** A SCAN MATCH pattern for keys that begin with `text` as written. */
function globPrefix(text: string): string {
  return `${text.replace(/[*?[\]\\]/g, "\\$&")}*`;
}

/** The HTTP side of the shared tier: reads answer undefined at once while Redis is not up. */
export class SharedHttp {
  constructor(
    private readonly redis: SharedRedis,
    private readonly now: () => number = Date.now,
  ) {}

  /** The variant stored under `key` (a secondary key of `url`). */
  get(key: string, url: string): Promise<CachedResponse | undefined> | undefined {
    const read = this.redis.read((r) => r.hgetBuffer(httpKey(url), variantField(key, url)));
    return read?.then((value) => (value ? decodeShared(value, key, this.now()) : undefined));
  }

  /**
   * The variant of `url` for a request whose Vary names this box does not know: one round trip
   * for a URL without Vary (its names and its only variant come together), two with.
   */
  find(url: string, headers: Headers): Promise<CachedResponse | undefined> | undefined {
    const read = this.redis.read((r) => r.hmgetBuffer(httpKey(url), "vary", "="));
    return read?.then((values) => {
      const [vary, plain] = values ?? [];
      if (!vary) return undefined;
      let names: string[];
      try {
        names = JSON.parse(vary.toString("utf8")) as string[];
        if (!Array.isArray(names) || names.some((n) => typeof n !== "string")) return undefined;
      } catch {
        return undefined;
      }
      if (names.length === 0) return plain ? decodeShared(plain, url, this.now()) : undefined;
      return this.get(secondaryKey(url, names, headers), url);
    });
  }

  put(e: CachedResponse): void {
    if (!this.redis.accepts()) return;
    const now = this.now();
    const ms = sharedLifetime(e, now);
    if (ms <= 0) return;
    const key = httpKey(e.url);
    const value = encodeShared(e, now + ms);
    // NX gives a new hash its expiry, GT lengthens an older one's: the hash lives as long as its
    // longest variant. In one transaction, so no hash is ever left without an expiry.
    this.redis.write((r) =>
      r
        .multi()
        .hset(key, "vary", JSON.stringify(e.varyNames), variantField(e.key, e.url), value)
        .pexpire(key, ms, "NX")
        .pexpire(key, ms, "GT")
        .exec(),
    );
  }

  /** Every variant of a URL, in one command: no write issued after it can be undone by it. */
  deleteUrl(url: string): void {
    this.redis.write((r) => r.del(httpKey(url)));
  }

  /** Every URL that begins with `prefix`, found with SCAN (in steps: Redis is never held long). */
  deletePrefix(prefix: string): void {
    this.redis.write(async (r) => {
      const pattern = globPrefix(httpKey(prefix));
      let cursor = "0";
      do {
        const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        if (keys.length > 0) await r.unlink(...keys);
        cursor = next;
      } while (cursor !== "0");
    });
  }
}

/**
 * A box's own tiers with the shared one behind them: a miss in memory (and on disk) asks Redis, and
 * what Redis holds is promoted into memory (not to disk, which would write it out again); every
 * write and purge goes to Redis too. What this box holds (URLs, counts) is the local tiers' alone.
 */
export class SharedTier implements CacheStore {
  constructor(
    private readonly local: CacheStore,
    private readonly memory: CacheStore,
    /** The shared tier in force (it changes with shared.redis on a reload); undefined: none. */
    private readonly shared: () => SharedHttp | undefined,
    /** A response learnt from Redis: the cache now knows the Vary names of its URL. */
    private readonly learnt: (url: string, varyNames: string[]) => void,
  ) {}

  open(): Promise<void> {
    return this.local.open();
  }

  get(key: string): CachedResponse | undefined | Promise<CachedResponse | undefined> {
    const hit = this.local.get(key);
    if (hit === undefined) return this.fromShared(key);
    if (hit instanceof Promise) return hit.then((e) => e ?? this.fromShared(key));
    return hit;
  }

  /** For a URL whose Vary names this box does not know (it never stored it): Redis may. */
  find(url: string, headers: Headers): Promise<CachedResponse | undefined> | undefined {
    return this.promoted(this.shared()?.find(url, headers));
  }

  private fromShared(key: string): Promise<CachedResponse | undefined> | undefined {
    // A secondary key is the URL, then "\n" and each Vary value; a URL never holds a newline.
    const end = key.indexOf("\n");
    return this.promoted(this.shared()?.get(key, end < 0 ? key : key.slice(0, end)));
  }

  private promoted(read: Promise<CachedResponse | undefined> | undefined): Promise<CachedResponse | undefined> | undefined {
    return read?.then((e) => {
      if (e) {
        this.memory.set(e);
        this.learnt(e.url, e.varyNames);
      }
      return e;
    });
  }

  set(e: CachedResponse): void {
    this.local.set(e);
    this.shared()?.put(e);
  }

  deleteUrl(url: string): number {
    this.shared()?.deleteUrl(url);
    return this.local.deleteUrl(url);
  }

  /** Purge by prefix reaches URLs only other boxes stored. */
  deletePrefix(prefix: string): void {
    this.shared()?.deletePrefix(prefix);
  }

  hasUrl(url: string): boolean {
    return this.local.hasUrl(url);
  }

  urls(): Iterable<string> {
    return this.local.urls();
  }

  varyIndex(): Iterable<[string, string[]]> {
    return this.local.varyIndex();
  }

  get entries(): number {
    return this.local.entries;
  }

  get bytes(): number {
    return this.local.bytes;
  }

  close(): Promise<void> {
    return this.local.close();
  }
}
