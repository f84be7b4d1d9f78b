import type { Config } from "../../config/schema.js";
import type { Logger } from "../../log/logger.js";
import type { Handler, Stage } from "../../pipeline/stage.js";
import { PushBody } from "../body.js";
import { flattenHeaders, type HeaderList, type HttpExchange, type HttpOutcome, type HttpResponse } from "../exchange.js";
import { type Directives, deltaSeconds, fieldList, parseCacheControl, parseHttpDate } from "./directives.js";
import { DiskStore } from "./disk-store.js";
import { type CachedResponse, currentAge, freshnessLifetime, header, mayStore, parseAge } from "./entry.js";
import { MemoryStore } from "./memory-store.js";
import { multipartBody, parseRange } from "./range.js";

type CacheConfig = Config["proxy"]["cache"];

const NAME = "gatehouse";
/** Seconds of staleness a copy may be served with while the origin is failing, absent stale-if-error. */
const STALE_ON_ERROR = 86_400;
const SAFE = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
// Fields never stored: one client's cookies must not reach another; Age is recomputed per hit.
const NOT_STORED = new Set(["set-cookie", "set-cookie2", "age"]);
// Fields a 304 must not change in the stored response (RFC 9111 §3.2).
const KEEP_ON_304 = new Set(["content-length", "content-encoding", "transfer-encoding", "content-range"]);
// Fields sent with a 304 answered from the cache (RFC 9110 §15.4.5).
const IN_304 = new Set(["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "via"]);

export interface CacheStats {
  entries: number;
  bytes: number;
  diskEntries: number;
  diskBytes: number;
  hits: number;
  misses: number;
  hitRatio: number;
}

type Fetch = Handler<HttpExchange, HttpOutcome>;

/**
 * The shared HTTP cache (RFC 9111) as a stage in front of the upstream fetch: memory tier, optional
 * disk tier, request collapsing, validation, Vary, Range, HEAD, invalidation and Cache-Status.
 */
export class HttpCache {
  private readonly memory: MemoryStore;
  private readonly disk: DiskStore | undefined;
  private readonly varyOf = new Map<string, string[]>();
  private readonly inflight = new Map<string, Promise<void>>();
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly cfg: CacheConfig,
    private readonly log: Logger,
  ) {
    this.memory = new MemoryStore(cfg.memory);
    if (cfg.disk > 0) {
      this.disk = new DiskStore(cfg.dir, cfg.disk, log);
      this.disk.open();
      for (const [url, names] of this.disk.varyIndex()) this.varyOf.set(url, names);
    }
  }

  stage(): Stage<HttpExchange, HttpOutcome> {
    return { name: "cache", handle: (x, next) => this.handle(x, next, true) };
  }

  stats(): CacheStats {
    const total = this.hits + this.misses;
    return {
      entries: this.memory.entries,
      bytes: this.memory.bytes,
      diskEntries: this.disk?.entries ?? 0,
      diskBytes: this.disk?.bytes ?? 0,
      hits: this.hits,
      misses: this.misses,
      hitRatio: total === 0 ? 0 : this.hits / total,
    };
  }

  /** Removes every stored variant of a URL, from both tiers; returns how many were found. */
  purge(url: string): number {
    let href = url;
    try {
      href = new URL(url).href;
    } catch {
      // Purge the key as given.
    }
    this.varyOf.delete(href);
    return this.memory.deleteUrl(href) + (this.disk?.deleteUrl(href) ?? 0);
  }

  private async handle(x: HttpExchange, next: Fetch, collapse: boolean): Promise<HttpOutcome> {
    if (x.connect) return next(x);
    const url = x.url.href;
    if (x.method !== "GET" && x.method !== "HEAD") {
      const out = await next(x);
      if (out.kind === "response" && !SAFE.has(x.method) && out.status < 400) this.invalidate(x.url, out.headers);
      if (out.kind === "response") addStatus(out, "fwd=method");
      return out;
    }
    const reqCc = requestDirectives(x);
    if (reqCc.has("no-store")) {
      const out = await next(x);
      if (out.kind === "response") addStatus(out, "fwd=request");
      return out;
    }
    // The memory tier answers synchronously; only a disk read costs a trip through the event loop.
    const found = this.lookupMemory(url, x) ?? (this.disk ? await this.lookupDisk(url, x) : undefined);
    const now = Date.now();
    if (found) {
      const e = found.entry;
      const age = currentAge(e, now);
      const fresh = e.lifetime > age;
      const staleness = age - e.lifetime;
      const mustRevalidate = forbidsStale(e.cc);
      const respNoCache = alwaysValidate(e.cc);
      const reqNoCache = reqCc.has("no-cache");
      let usable = !respNoCache && !reqNoCache;
      const maxAge = deltaSeconds(reqCc, "max-age");
      // max-age=0 is how browsers ask for a reload: validate, as Squid and nginx do.
      if (usable && typeof maxAge === "number" && (age > maxAge || maxAge === 0)) usable = false;
      const minFresh = deltaSeconds(reqCc, "min-fresh");
      if (usable && typeof minFresh === "number" && e.lifetime - age < minFresh) usable = false;
      if (usable && !fresh) {
        const maxStale = reqCc.get("max-stale");
        const allowance =
          maxStale === undefined
            ? -1
            : maxStale === true
              ? Number.POSITIVE_INFINITY
              : /^\d+$/.test(maxStale)
                ? Number(maxStale)
                : -1;
        usable = !mustRevalidate && staleness <= allowance;
      }
      if (usable) {
        this.hits++;
        x.log.cache = found.tier === "memory" ? "TCP_MEM_HIT" : "TCP_HIT";
        return this.serve(x, e, age, `hit; ttl=${e.lifetime - age}`);
      }
      // stale-while-revalidate (RFC 5861): serve the stale copy now, refresh in the background.
      const swr = deltaSeconds(e.cc, "stale-while-revalidate");
      if (!fresh && !mustRevalidate && !reqNoCache && !respNoCache && typeof swr === "number" && staleness <= swr && collapse) {
        this.hits++;
        x.log.cache = "TCP_STALE_HIT";
        void this.revalidate(x, e, next, true).catch(() => {});
        return this.serve(x, e, age, `hit; ttl=${e.lifetime - age}; detail=stale-while-revalidate`);
      }
      if (reqCc.has("only-if-cached")) return this.gatewayTimeout(x);
      this.misses++;
      return this.revalidate(x, e, next, false);
    }
    if (reqCc.has("only-if-cached")) return this.gatewayTimeout(x);
    // Collapse concurrent misses for a URL: one fetch; the others wait for it to be stored.
    const plain =
      collapse && x.method === "GET" && !x.headers.range && !x.headers["if-none-match"] && !x.headers["if-modified-since"];
    if (plain) {
      const running = this.inflight.get(url);
      if (running) {
        await running;
        return this.handle(x, next, false);
      }
    }
    this.misses++;
    const status = this.hasUrl(url) ? "fwd=vary-miss" : "fwd=uri-miss";
    return this.fetchAndStore(x, next, reqCc, status, plain);
  }

  private hasUrl(url: string): boolean {
    return this.memory.hasUrl(url) || (this.disk?.hasUrl(url) ?? false);
  }

  private lookupMemory(url: string, x: HttpExchange): { entry: CachedResponse; tier: "memory" | "disk" } | undefined {
    const names = this.varyOf.get(url);
    if (names === undefined) return undefined;
    const mem = this.memory.get(secondaryKey(url, names, x));
    return mem ? { entry: mem, tier: "memory" } : undefined;
  }

  private async lookupDisk(
    url: string,
    x: HttpExchange,
  ): Promise<{ entry: CachedResponse; tier: "memory" | "disk" } | undefined> {
    const names = this.varyOf.get(url);
    if (names === undefined || !this.disk) return undefined;
    const key = secondaryKey(url, names, x);
    if (!this.disk.has(key)) return undefined;
    const d = await this.disk.get(key);
    if (!d) return undefined;
    this.memory.set(d);
    return { entry: d, tier: "disk" };
  }

  private gatewayTimeout(x: HttpExchange): HttpResponse {
    x.log.cache = "TCP_MISS";
    const body = Buffer.from("504 Gateway Timeout: not in the cache, and the request said only-if-cached\n");
    return {
      kind: "response",
      status: 504,
      headers: [
        ["content-type", "text/plain; charset=utf-8"],
        ["content-length", String(body.length)],
        ["cache-status", `${NAME}; fwd=miss; detail=only-if-cached`],
      ],
      body,
    };
  }

  /** Fetch from the origin; store the response if RFC 9111 §3 allows, while it streams to the client. */
  private async fetchAndStore(
    x: HttpExchange,
    next: Fetch,
    reqCc: Directives,
    status: string,
    leader: boolean,
  ): Promise<HttpOutcome> {
    const url = x.url.href;
    let release: () => void = () => {};
    if (leader) this.inflight.set(url, new Promise<void>((r) => (release = r)));
    const done = () => {
      if (leader) this.inflight.delete(url);
      release();
    };
    const requestTime = Date.now();
    let out: HttpOutcome;
    try {
      out = await next(x);
    } catch (err) {
      done();
      throw err;
    }
    if (out.kind !== "response") {
      done();
      return out;
    }
    x.log.cache = "TCP_MISS";
    return this.keep(x, out, reqCc, requestTime, status, done);
  }

  /**
   * Stores a fetched response if RFC 9111 §3 allows, collecting its body as it streams to the
   * client; `done` runs as soon as the outcome is known (uncacheable at once, else once stored).
   */
  private keep(
    x: HttpExchange,
    out: HttpResponse,
    reqCc: Directives,
    requestTime: number,
    status: string,
    done: () => void,
  ): HttpResponse {
    const storable =
      x.method === "GET" && !x.headers.range && out.status !== 206
        ? mayStore(
            x.method,
            reqCc,
            x.headers.authorization !== undefined,
            out.status,
            parseCacheControl(values(out.headers, "cache-control")),
            out.headers,
          )
        : { store: false as const, why: "partial" };
    const length = Number(header(out.headers, "content-length") ?? Number.NaN);
    if (!storable.store || length > this.cfg.maxObject) {
      // Uncacheable: waiters go to the origin themselves at once, never queued behind this one.
      done();
      addStatus(out, status);
      return out;
    }
    addStatus(out, `${status}; stored`);
    const responseTime = Date.now();
    const finish = (body: Buffer) => {
      this.store(x, out, body, requestTime, responseTime);
      done();
    };
    const body = out.body;
    if (body === null || Buffer.isBuffer(body)) {
      finish(body ?? Buffer.alloc(0));
      return out;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let abandoned = false;
    body.tap({
      data: (c) => {
        if (abandoned) return;
        size += c.length;
        if (size > this.cfg.maxObject) {
          abandoned = true;
          chunks.length = 0;
          done();
        } else chunks.push(c);
      },
      end: () => {
        if (!abandoned) finish(Buffer.concat(chunks, size));
      },
      error: () => {
        if (!abandoned) done();
        abandoned = true;
      },
    });
    return out;
  }

  private store(x: HttpExchange, res: HttpResponse, body: Buffer, requestTime: number, responseTime: number): void {
    const cc = parseCacheControl(values(res.headers, "cache-control"));
    const hidden = new Set([...(fieldList(cc, "private") ?? []), ...(fieldList(cc, "no-cache") ?? [])]);
    const headers: HeaderList = res.headers.filter(([n]) => !NOT_STORED.has(n) && !hidden.has(n) && n !== "cache-status");
    const dateValue = parseHttpDate(header(res.headers, "date")) ?? responseTime;
    const varyNames = (header(res.headers, "vary") ?? "")
      .split(",")
      .map((v) => v.trim().toLowerCase())
      .filter(Boolean);
    const url = x.url.href;
    if (!headers.some(([n]) => n === "content-length") && x.method === "GET")
      headers.push(["content-length", String(body.length)]);
    const entry: CachedResponse = {
      key: secondaryKey(url, varyNames, x),
      url,
      status: res.status,
      headers,
      body,
      requestTime,
      responseTime,
      dateValue,
      ageValue: parseAge(header(res.headers, "age")),
      lifetime: freshnessLifetime(res.status, cc, res.headers, dateValue, responseTime),
      cc,
      varyNames,
      etag: header(res.headers, "etag"),
      lastModified: header(res.headers, "last-modified"),
      flat: flattenHeaders(headers),
    };
    // A new variant set replaces the old one if the Vary fields changed.
    const previous = this.varyOf.get(url);
    if (previous && previous.join(",") !== varyNames.join(",")) this.purge(url);
    this.varyOf.set(url, varyNames);
    this.memory.set(entry);
    void this.disk?.set(entry);
  }

  /** Conditional request to the origin for a stale entry (RFC 9111 §4.3). */
  private async revalidate(x: HttpExchange, e: CachedResponse, next: Fetch, background: boolean): Promise<HttpOutcome> {
    const extra: string[] = [];
    if (e.etag) extra.push("if-none-match", e.etag);
    if (e.lastModified) extra.push("if-modified-since", e.lastModified);
    const requestTime = Date.now();
    const cond: HttpExchange = {
      ...x,
      method: "GET",
      rawHeaders: [...stripConditionals(x.rawHeaders), ...extra],
      headers: {
        ...x.headers,
        "if-none-match": undefined,
        "if-modified-since": undefined,
        range: undefined,
        "if-range": undefined,
      },
      body: null,
      decisions: background ? [] : x.decisions,
      log: background ? { ...x.log } : x.log,
    };
    let out: HttpOutcome;
    try {
      out = extra.length > 0 ? await next(cond) : await next(x);
    } catch (err) {
      const served = this.staleIfError(x, e);
      if (served) return served;
      throw err;
    }
    if (out.kind !== "response") return out;
    const now = Date.now();
    if (out.status === 304 && extra.length > 0) {
      if (out.body instanceof PushBody) out.body.abort(new Error("304 has no body"));
      const updated = this.refreshed(e, out.headers, requestTime, now);
      this.memory.set(updated);
      void this.disk?.set(updated);
      if (background) return out;
      x.log.cache = "TCP_REFRESH_UNMODIFIED";
      const served = this.serve(x, updated, currentAge(updated, now), "fwd=stale; fwd-status=304");
      // Cookies the origin set in this very 304 belong to this client: relayed, never stored.
      for (const [n, v] of out.headers) {
        if (n !== "set-cookie" && n !== "set-cookie2") continue;
        for (const value of Array.isArray(v) ? v : [v]) served.flat?.push(n, value);
      }
      return served;
    }
    if (out.status >= 500) {
      const served = this.staleIfError(x, e);
      if (served) {
        if (out.body instanceof PushBody) out.body.abort(new Error("replaced by a stale copy"));
        return served;
      }
    }
    const reqCc = requestDirectives(x);
    // A full response replaces the entry; if it is not storable now, the old entry goes too.
    this.purge(x.url.href);
    if (background) {
      this.keep(x, out, reqCc, requestTime, "fwd=stale", () => {});
      if (out.body instanceof PushBody) out.body.attach({ data: () => true, end: () => {}, error: () => {} });
      return out;
    }
    x.log.cache = "TCP_REFRESH_MODIFIED";
    return this.keep(x, out, reqCc, requestTime, "fwd=stale", () => {});
  }

  /**
   * The origin failed (unreachable, reset, or 5xx) while an entry was being revalidated: serve the
   * stale copy (RFC 9111 §4.2.4 allows it when disconnected), as Squid does, unless the response
   * forbids it (must-revalidate, proxy-revalidate, s-maxage, no-cache). stale-if-error (RFC 5861)
   * sets the window; without it, up to a day of staleness.
   */
  private staleIfError(x: HttpExchange, e: CachedResponse): HttpOutcome | undefined {
    const age = currentAge(e, Date.now());
    const staleness = age - e.lifetime;
    const prohibited = forbidsStale(e.cc) || alwaysValidate(e.cc);
    const sie = deltaSeconds(e.cc, "stale-if-error") ?? deltaSeconds(requestDirectives(x), "stale-if-error");
    const window = typeof sie === "number" ? sie : STALE_ON_ERROR;
    if (prohibited || staleness > window) return undefined;
    x.log.cache = "TCP_REFRESH_FAIL_OLD";
    return this.serve(
      x,
      e,
      age,
      `hit; ttl=${e.lifetime - age}; detail=${typeof sie === "number" ? "stale-if-error" : "origin-error"}`,
    );
  }

  /** RFC 9111 §4.3.4: a 304 replaces the stored header fields it carries. */
  private refreshed(e: CachedResponse, fresh: HeaderList, requestTime: number, responseTime: number): CachedResponse {
    const incoming = fresh.filter(([n]) => !KEEP_ON_304.has(n) && !NOT_STORED.has(n) && n !== "cache-status");
    const names = new Set(incoming.map(([n]) => n));
    const headers: HeaderList = [...e.headers.filter(([n]) => !names.has(n)), ...incoming];
    const cc = parseCacheControl(values(headers, "cache-control"));
    const dateValue = parseHttpDate(header(headers, "date")) ?? responseTime;
    return {
      ...e,
      headers,
      requestTime,
      responseTime,
      dateValue,
      ageValue: parseAge(header(fresh, "age")),
      lifetime: freshnessLifetime(e.status, cc, headers, dateValue, responseTime),
      cc,
      etag: header(headers, "etag"),
      lastModified: header(headers, "last-modified"),
      flat: flattenHeaders(headers),
    };
  }

  /** A response from a stored entry: client conditionals, Range, HEAD, Age and Cache-Status. */
  private serve(x: HttpExchange, e: CachedResponse, age: number, status: string): HttpResponse {
    const cacheStatus = `${NAME}; ${status}`;
    if (notModified(x, e)) {
      if (x.log.cache === "TCP_MEM_HIT" || x.log.cache === "TCP_HIT") x.log.cache = "TCP_IMS_HIT";
      const flat: string[] = [];
      for (const [n, v] of e.headers) if (IN_304.has(n)) flat.push(n, Array.isArray(v) ? v.join(", ") : v);
      flat.push("age", String(age), "cache-status", cacheStatus);
      return { kind: "response", status: 304, headers: [], flat, body: null };
    }
    const head = x.method === "HEAD";
    const range = x.headers.range;
    if (typeof range === "string" && e.status === 200 && ifRangeMatches(x, e)) {
      const r = parseRange(range, e.body.length);
      if (r.kind === "unsatisfiable") {
        const flat = [
          ...withoutLength(e.flat),
          "content-range",
          `bytes */${e.body.length}`,
          "content-length",
          "0",
          "age",
          String(age),
          "cache-status",
          cacheStatus,
        ];
        return { kind: "response", status: 416, headers: [], flat, body: null };
      }
      if (r.kind === "ranges") {
        if (r.ranges.length === 1) {
          const [start, end] = r.ranges[0] as [number, number];
          const flat = [
            ...withoutLength(e.flat),
            "content-range",
            `bytes ${start}-${end}/${e.body.length}`,
            "content-length",
            String(end - start + 1),
            "age",
            String(age),
            "cache-status",
            cacheStatus,
          ];
          return { kind: "response", status: 206, headers: [], flat, body: head ? null : e.body.subarray(start, end + 1) };
        }
        const type = header(e.headers, "content-type");
        const mp = multipartBody(e.body, r.ranges, type);
        const flat = [
          ...withoutLength(e.flat).filter(
            (_, i, a) => !(i % 2 === 0 && a[i] === "content-type") && !(i % 2 === 1 && a[i - 1] === "content-type"),
          ),
          "content-type",
          `multipart/byteranges; boundary=${mp.boundary}`,
          "content-length",
          String(mp.body.length),
          "age",
          String(age),
          "cache-status",
          cacheStatus,
        ];
        return { kind: "response", status: 206, headers: [], flat, body: head ? null : mp.body };
      }
    }
    const flat = [...e.flat, "age", String(age), "cache-status", cacheStatus];
    return { kind: "response", status: e.status, headers: [], flat, body: head ? null : e.body };
  }

  /** RFC 9111 §4.4: an unsafe request that succeeded invalidates the URI, Location and Content-Location. */
  private invalidate(target: URL, headers: HeaderList): void {
    this.purge(target.href);
    for (const name of ["location", "content-location"]) {
      const v = header(headers, name);
      if (!v) continue;
      try {
        const u = new URL(v, target);
        if (u.origin === target.origin) this.purge(u.href);
      } catch {
        // Not a URL: nothing to invalidate.
      }
    }
  }
}

const NO_DIRECTIVES: Directives = new Map();

function requestDirectives(x: HttpExchange): Directives {
  // Most requests carry neither field: share one empty (never mutated) map.
  if (x.headers["cache-control"] === undefined && x.headers.pragma === undefined) return NO_DIRECTIVES;
  const cc = parseCacheControl(x.headers["cache-control"]);
  // Pragma: no-cache counts only without Cache-Control (RFC 9111 §5.4).
  if (x.headers["cache-control"] === undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(String(x.headers.pragma ?? "")))
    cc.set("no-cache", true);
  return cc;
}

function secondaryKey(url: string, varyNames: readonly string[], x: HttpExchange): string {
  if (varyNames.length === 0) return url;
  let key = url;
  for (const n of varyNames) {
    const v = x.headers[n];
    key += `\n${n}:${(Array.isArray(v) ? v.join(",") : (v ?? "")).replace(/\s*,\s*/g, ",").trim()}`;
  }
  return key;
}

/** must-revalidate, proxy-revalidate and s-maxage (§5.2.2.2, .8, .10): never served stale. */
function forbidsStale(cc: Directives): boolean {
  return cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage");
}

/** no-cache without field names (§5.2.2.4): validated before every use. */
function alwaysValidate(cc: Directives): boolean {
  return cc.has("no-cache") && !fieldList(cc, "no-cache");
}

function values(list: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (const [n, v] of list) if (n === name) out.push(...(Array.isArray(v) ? v : [v]));
  return out;
}

function withoutLength(flat: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i] !== "content-length") out.push(flat[i] as string, flat[i + 1] as string);
  return out;
}

function addStatus(out: HttpResponse, status: string): void {
  const entry = `${NAME}; ${status}`;
  const existing = out.headers.findIndex(([n]) => n === "cache-status");
  if (existing >= 0) {
    const [, v] = out.headers[existing] as [string, string];
    out.headers[existing] = ["cache-status", `${v}, ${entry}`];
  } else out.headers.push(["cache-status", entry]);
}

function stripConditionals(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = (raw[i] as string).toLowerCase();
    if (
      n === "if-none-match" ||
      n === "if-modified-since" ||
      n === "if-range" ||
      n === "range" ||
      n === "if-match" ||
      n === "if-unmodified-since"
    )
      continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

/** RFC 9110 §13.1.2-3 against a stored response: weak comparison for If-None-Match. */
function notModified(x: HttpExchange, e: CachedResponse): boolean {
  if (x.method !== "GET" && x.method !== "HEAD") return false;
  const inm = x.headers["if-none-match"];
  if (typeof inm === "string") {
    if (!e.etag) return false;
    if (inm.trim() === "*") return true;
    const weak = (t: string) => t.trim().replace(/^W\//, "");
    return inm.split(",").some((t) => weak(t) === weak(e.etag as string));
  }
  const ims = parseHttpDate(x.headers["if-modified-since"]);
  if (ims === undefined) return false;
  const lm = parseHttpDate(e.lastModified) ?? e.dateValue;
  return lm <= ims;
}

/** If-Range: a strong ETag match or an exact Last-Modified date; otherwise the whole response. */
function ifRangeMatches(x: HttpExchange, e: CachedResponse): boolean {
  const ir = x.headers["if-range"];
  if (typeof ir !== "string") return true;
  if (ir.startsWith('"') || ir.startsWith("W/")) return !ir.startsWith("W/") && e.etag === ir && !e.etag.startsWith("W/");
  return e.lastModified !== undefined && parseHttpDate(ir) === parseHttpDate(e.lastModified);
}
