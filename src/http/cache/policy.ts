// RFC 9111's decisions for a shared cache, as functions without I/O: what may be stored, for how
// long, whether a stored response may answer a request, how a 304 updates it, what an unsafe
// request invalidates. The cache stage (http-cache.ts) only moves bytes and calls these; the
// tables in test/unit/http/cache-policy.test.ts check them without a socket.

import type { HeaderList, Headers } from "../exchange.js";
import { type Directives, deltaSeconds, fieldList, MAX_DELTA, parseCacheControl, parseHttpDate } from "./directives.js";

/** What the decisions need to know of a stored response. */
export interface StoredMeta {
  status: number;
  headers: HeaderList;
  cc: Directives;
  /** When the request that produced it was sent, when the response arrived, its Date (ms). */
  requestTime: number;
  responseTime: number;
  dateValue: number;
  /** The Age the origin (or a cache before us) sent, in seconds. */
  ageValue: number;
  /** Freshness lifetime in seconds. */
  lifetime: number;
  etag: string | undefined;
  lastModified: string | undefined;
}

/** Fields never stored: one client's cookies must not reach another; Age is recomputed per hit. */
export const NOT_STORED = new Set(["set-cookie", "set-cookie2", "age", "cache-status"]);
/** Fields a 304 must not change in the stored response (RFC 9111 §3.2). */
const KEEP_ON_304 = new Set(["content-length", "content-encoding", "transfer-encoding", "content-range"]);
/** Fields sent with a 304 answered from the cache (RFC 9110 §15.4.5). */
export const IN_304 = new Set(["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "via"]);
/** Statuses a cache may store with heuristic freshness (RFC 9110 §15.1). */
export const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Statuses whose semantics this cache knows; they matter only with must-understand (§5.2.2.3). */
const UNDERSTOOD = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501]);
const SAFE = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
/** Seconds of staleness a copy may be served with while the origin fails, absent stale-if-error. */
export const STALE_ON_ERROR = 86_400;

/**
 * A field's value, every line of it: a field sent on several lines is one comma-separated list
 * (RFC 9110 §5.3), so `Vary: ""` then `Vary: *` is `*`.
 */
export function fieldValue(list: HeaderList, name: string): string | undefined {
  let out: string | undefined;
  for (const [n, v] of list) {
    if (n !== name) continue;
    const text = Array.isArray(v) ? v.join(", ") : v;
    out = out === undefined ? text : `${out}, ${text}`;
  }
  return out;
}

/** Every line of a field, for directives parsed line by line. */
export function fieldLines(list: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (const [n, v] of list) if (n === name) out.push(...(Array.isArray(v) ? v : [v]));
  return out;
}

/** Age (RFC 9111 §5.1): the first value of the list; anything that is not delta-seconds is 0. */
export function parseAge(value: string | undefined): number {
  if (value === undefined) return 0;
  const first = value.split(",")[0]?.trim() ?? "";
  if (!/^\d+$/.test(first)) return 0;
  return Math.min(Number(first), MAX_DELTA);
}

const NO_DIRECTIVES: Directives = new Map();

/** The request's Cache-Control; Pragma: no-cache counts only without Cache-Control (§5.4). */
export function requestDirectives(headers: Headers): Directives {
  // Most requests carry neither field: share one empty (never mutated) map.
  if (headers["cache-control"] === undefined && headers.pragma === undefined) return NO_DIRECTIVES;
  const cc = parseCacheControl(headers["cache-control"]);
  if (headers["cache-control"] === undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(String(headers.pragma ?? "")))
    cc.set("no-cache", true);
  return cc;
}

export type StoreVerdict = { store: true } | { store: false; why: string };

/** §3: may a shared cache store this response to this request? */
export function mayStore(
  method: string,
  requestCc: Directives,
  hasAuthorization: boolean,
  status: number,
  cc: Directives,
  headers: HeaderList,
): StoreVerdict {
  if (method !== "GET") return { store: false, why: "method" };
  // Any final status may be stored, except that 206 and 304 are never stored whole here (a
  // deliberate choice: partial responses are not combined), and must-understand restricts storing
  // to statuses the cache understands.
  if (status < 200 || status === 206 || status === 304) return { store: false, why: "status" };
  if (cc.has("must-understand") && !UNDERSTOOD.has(status)) return { store: false, why: "status" };
  // must-understand overrides no-store for a status the cache understands (§5.2.2.3).
  if (requestCc.has("no-store") || (cc.has("no-store") && !(cc.has("must-understand") && UNDERSTOOD.has(status)))) {
    return { store: false, why: "no-store" };
  }
  if (cc.has("private") && !fieldList(cc, "private")) return { store: false, why: "private" };
  if (hasAuthorization && !cc.has("public") && !cc.has("s-maxage") && !cc.has("must-revalidate"))
    return { store: false, why: "authorization" };
  if (varyNames(headers).includes("*")) return { store: false, why: "vary-star" };
  const explicit = cc.has("max-age") || cc.has("s-maxage") || fieldValue(headers, "expires") !== undefined || cc.has("public");
  if (!explicit && !HEURISTIC_STATUSES.has(status)) return { store: false, why: "no-freshness" };
  // No freshness and no validator: such a copy could never be used without a full refetch, so
  // storing it would only cost a copy per request (most pages without caching headers are this).
  if (!explicit && fieldValue(headers, "last-modified") === undefined && fieldValue(headers, "etag") === undefined) {
    return { store: false, why: "no-freshness" };
  }
  return { store: true };
}

/** §4.2.1 for a shared cache, in seconds; 0 for invalid explicit values, which makes the response stale. */
export function freshnessLifetime(
  status: number,
  cc: Directives,
  headers: HeaderList,
  dateValue: number,
  responseTime: number,
): number {
  const sMaxAge = deltaSeconds(cc, "s-maxage");
  if (sMaxAge !== undefined) return sMaxAge === "invalid" ? 0 : sMaxAge;
  const maxAge = deltaSeconds(cc, "max-age");
  if (maxAge !== undefined) return maxAge === "invalid" ? 0 : maxAge;
  const expiresLines = fieldLines(headers, "expires");
  if (expiresLines.length > 0) {
    if (expiresLines.length > 1) return 0;
    const expires = parseHttpDate(expiresLines[0]);
    if (expires === undefined) return 0;
    return Math.max(0, Math.floor((expires - (dateValue || responseTime)) / 1000));
  }
  // Heuristic freshness (§4.2.2): only without explicit expiry, for statuses that allow it or public.
  if (!HEURISTIC_STATUSES.has(status) && !cc.has("public")) return 0;
  const lastModified = parseHttpDate(fieldValue(headers, "last-modified"));
  if (lastModified === undefined) return 0;
  const since = (dateValue || responseTime) - lastModified;
  return since > 0 ? Math.min(86_400, Math.floor(since / 10_000)) : 0;
}

/** §4.2.3, in whole seconds. */
export function currentAge(e: Pick<StoredMeta, "ageValue" | "dateValue" | "requestTime" | "responseTime">, now: number): number {
  const apparent = Math.max(0, e.responseTime - e.dateValue) / 1000;
  const delay = (e.responseTime - e.requestTime) / 1000;
  const corrected = Math.max(apparent, e.ageValue + delay);
  const resident = (now - e.responseTime) / 1000;
  return Math.floor(corrected + resident);
}

/** The Vary field names of a response, lower case; "*" included if present. */
export function varyNames(headers: HeaderList): string[] {
  return (fieldValue(headers, "vary") ?? "")
    .split(",")
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean);
}

/** The key of one variant: the URL plus the request's values of the Vary fields (§4.1). */
export function secondaryKey(url: string, names: readonly string[], headers: Headers): string {
  if (names.length === 0) return url;
  let key = url;
  for (const n of names) {
    const v = headers[n];
    key += `\n${n}:${(Array.isArray(v) ? v.join(",") : (v ?? "")).replace(/\s*,\s*/g, ",").trim()}`;
  }
  return key;
}

/** must-revalidate, proxy-revalidate and s-maxage (§5.2.2.2, .8, .10): never served stale. */
export function forbidsStale(cc: Directives): boolean {
  return cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage");
}

/** no-cache without field names (§5.2.2.4): validated before every use. */
export function alwaysValidate(cc: Directives): boolean {
  return cc.has("no-cache") && !fieldList(cc, "no-cache");
}

/**
 * Whether a stored response may answer this request as it is (§4.2, §5.2.1), must be served stale
 * while it is refreshed in the background (RFC 5861 stale-while-revalidate), or must be validated.
 */
export type Reuse = "fresh" | "stale-while-revalidate" | "validate";

export function reuse(e: StoredMeta, reqCc: Directives, now: number): { reuse: Reuse; age: number } {
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
      maxStale === undefined ? -1 : maxStale === true ? Number.POSITIVE_INFINITY : /^\d+$/.test(maxStale) ? Number(maxStale) : -1;
    usable = !mustRevalidate && staleness <= allowance;
  }
  if (usable) return { reuse: "fresh", age };
  const swr = deltaSeconds(e.cc, "stale-while-revalidate");
  if (!fresh && !mustRevalidate && !reqNoCache && !respNoCache && typeof swr === "number" && staleness <= swr) {
    return { reuse: "stale-while-revalidate", age };
  }
  return { reuse: "validate", age };
}

/**
 * May a stale copy answer while the origin fails (unreachable, reset, 5xx)? §4.2.4 allows it when
 * disconnected, as Squid does, unless the response forbids it (must-revalidate, proxy-revalidate,
 * s-maxage, no-cache). stale-if-error (RFC 5861) sets the window; without it, a day.
 */
export function staleOnError(e: StoredMeta, reqCc: Directives, now: number): { age: number; detail: string } | undefined {
  const age = currentAge(e, now);
  if (forbidsStale(e.cc) || alwaysValidate(e.cc)) return undefined;
  const sie = deltaSeconds(e.cc, "stale-if-error") ?? deltaSeconds(reqCc, "stale-if-error");
  const window = typeof sie === "number" ? sie : STALE_ON_ERROR;
  if (age - e.lifetime > window) return undefined;
  return { age, detail: typeof sie === "number" ? "stale-if-error" : "origin-error" };
}

/** The validators for a conditional request to the origin (§4.3.1), as raw header pairs. */
export function validators(e: StoredMeta): string[] {
  const out: string[] = [];
  if (e.etag) out.push("if-none-match", e.etag);
  if (e.lastModified) out.push("if-modified-since", e.lastModified);
  return out;
}

/** The fields to store from a response: without cookies, Age, and fields that private/no-cache name. */
export function storedFields(headers: HeaderList, cc: Directives): HeaderList {
  const hidden = new Set([...(fieldList(cc, "private") ?? []), ...(fieldList(cc, "no-cache") ?? [])]);
  return headers.filter(([n]) => !NOT_STORED.has(n) && !hidden.has(n));
}

/** §3.2/§4.3.4: a 304 replaces the stored fields it carries, except the ones that frame the body. */
export function refreshedFields(stored: HeaderList, incoming: HeaderList): HeaderList {
  const update = incoming.filter(([n]) => !KEEP_ON_304.has(n) && !NOT_STORED.has(n));
  const names = new Set(update.map(([n]) => n));
  return [...stored.filter(([n]) => !names.has(n)), ...update];
}

/** RFC 9110 §13.1.1-2 against a stored response: If-None-Match (weak comparison), else If-Modified-Since. */
export function notModified(method: string, headers: Headers, e: StoredMeta): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  const inm = headers["if-none-match"];
  if (typeof inm === "string") {
    if (!e.etag) return false;
    if (inm.trim() === "*") return true;
    const weak = (t: string) => t.trim().replace(/^W\//, "");
    return inm.split(",").some((t) => weak(t) === weak(e.etag as string));
  }
  const ims = parseHttpDate(headers["if-modified-since"]);
  if (ims === undefined) return false;
  const lm = parseHttpDate(e.lastModified) ?? e.dateValue;
  return lm <= ims;
}

/** If-Range (RFC 9110 §13.1.5): a strong ETag match or an exact Last-Modified date. */
export function ifRangeMatches(headers: Headers, e: StoredMeta): boolean {
  const ir = headers["if-range"];
  if (typeof ir !== "string") return true;
  if (ir.startsWith('"') || ir.startsWith("W/")) return !ir.startsWith("W/") && e.etag === ir && !e.etag.startsWith("W/");
  return e.lastModified !== undefined && parseHttpDate(ir) === parseHttpDate(e.lastModified);
}

/** §4.4: what a successful unsafe request invalidates: its URI, and Location/Content-Location on the same origin. */
export function invalidated(method: string, status: number, target: URL, headers: HeaderList): string[] {
  if (SAFE.has(method) || status >= 400) return [];
  const out = [target.href];
  for (const name of ["location", "content-location"]) {
    const v = fieldValue(headers, name);
    if (!v) continue;
    try {
      const u = new URL(v, target);
      if (u.origin === target.origin) out.push(u.href);
    } catch {
      // Not a URL: nothing to invalidate.
    }
  }
  return out;
}
