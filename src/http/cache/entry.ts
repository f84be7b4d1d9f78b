import type { HeaderList } from "../exchange.js";
import { type Directives, deltaSeconds, fieldList, MAX_DELTA, parseHttpDate } from "./directives.js";

/** A stored response, with everything a hit needs computed once when it was stored. */
export interface CachedResponse {
  /** Primary key (the URL) plus the request's values for the Vary fields. */
  key: string;
  url: string;
  status: number;
  /** Stored fields, names lower case; no hop-by-hop fields, no Set-Cookie, no Age. */
  headers: HeaderList;
  body: Buffer;
  /** When the request that produced this response was sent, and when the response arrived (ms). */
  requestTime: number;
  responseTime: number;
  dateValue: number;
  /** The Age field the origin (or a cache before us) sent, in seconds. */
  ageValue: number;
  /** Freshness lifetime in seconds (RFC 9111 §4.2.1). */
  lifetime: number;
  cc: Directives;
  varyNames: string[];
  etag: string | undefined;
  lastModified: string | undefined;
  /** Headers ready for writeHead, without Age and Cache-Status. */
  flat: string[];
}

export function header(list: HeaderList, name: string): string | undefined {
  for (const [n, v] of list) if (n === name) return Array.isArray(v) ? v.join(", ") : v;
  return undefined;
}

/** Statuses a cache may store with heuristic freshness (RFC 9110 §15.1). */
export const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/** Statuses whose semantics this cache knows; they matter only with must-understand (§5.2.2.3). */
const UNDERSTOOD = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501]);

/** RFC 9111 §4.2.1 for a shared cache; 0 for invalid explicit values, which makes the response stale. */
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
  const expiresRaw = header(headers, "expires");
  if (expiresRaw !== undefined) {
    if (headers.filter(([n]) => n === "expires").length > 1) return 0;
    const expires = parseHttpDate(expiresRaw);
    if (expires === undefined) return 0;
    return Math.max(0, Math.floor((expires - (dateValue || responseTime)) / 1000));
  }
  // Heuristic freshness (§4.2.2): only without explicit expiry, for statuses that allow it or public.
  if (!HEURISTIC_STATUSES.has(status) && !cc.has("public")) return 0;
  const lastModified = parseHttpDate(header(headers, "last-modified"));
  if (lastModified === undefined) return 0;
  const since = (dateValue || responseTime) - lastModified;
  return since > 0 ? Math.min(86_400, Math.floor(since / 10_000)) : 0;
}

/** RFC 9111 §4.2.3. */
export function currentAge(
  e: Pick<CachedResponse, "ageValue" | "dateValue" | "requestTime" | "responseTime">,
  now: number,
): number {
  const apparent = Math.max(0, e.responseTime - e.dateValue) / 1000;
  const delay = (e.responseTime - e.requestTime) / 1000;
  const correctedAgeValue = e.ageValue + delay;
  const corrected = Math.max(apparent, correctedAgeValue);
  const resident = (now - e.responseTime) / 1000;
  return Math.floor(corrected + resident);
}

export type StoreVerdict = { store: true } | { store: false; why: string };

/** RFC 9111 §3: may a shared cache store this response to this request? */
export function mayStore(
  method: string,
  requestCc: Directives,
  hasAuthorization: boolean,
  status: number,
  cc: Directives,
  headers: HeaderList,
): StoreVerdict {
  if (method !== "GET") return { store: false, why: "method" };
  // §3: any final status may be stored, except that 206 and 304 are never stored whole here, and
  // must-understand restricts storing to statuses the cache understands.
  if (status < 200 || status === 206 || status === 304) return { store: false, why: "status" };
  if (cc.has("must-understand") && !UNDERSTOOD.has(status)) return { store: false, why: "status" };
  // must-understand overrides no-store for a status the cache understands (§5.2.2.3).
  if (requestCc.has("no-store") || (cc.has("no-store") && !(cc.has("must-understand") && UNDERSTOOD.has(status)))) {
    return { store: false, why: "no-store" };
  }
  if (cc.has("private") && !fieldList(cc, "private")) return { store: false, why: "private" };
  if (hasAuthorization && !cc.has("public") && !cc.has("s-maxage") && !cc.has("must-revalidate"))
    return { store: false, why: "authorization" };
  const vary = header(headers, "vary");
  if (vary?.split(",").some((v) => v.trim() === "*")) return { store: false, why: "vary-star" };
  const explicit = cc.has("max-age") || cc.has("s-maxage") || header(headers, "expires") !== undefined || cc.has("public");
  if (!explicit && !HEURISTIC_STATUSES.has(status)) return { store: false, why: "no-freshness" };
  // No freshness and no validator: such a copy could never be used without a full refetch, so
  // storing it would only cost a copy per request (most pages without caching headers are this).
  if (!explicit && header(headers, "last-modified") === undefined && header(headers, "etag") === undefined) {
    return { store: false, why: "no-freshness" };
  }
  return { store: true };
}

export function parseAge(value: string | undefined): number {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return 0;
  return Math.min(Number(value), MAX_DELTA);
}
