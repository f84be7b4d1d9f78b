import { flattenHeaders, type HeaderList, type Headers, type HttpResponse } from "../exchange.js";
import { parseCacheControl, parseHttpDate } from "./directives.js";
import {
  fieldLines,
  fieldValue,
  freshnessLifetime,
  IN_304,
  ifRangeMatches,
  notModified,
  parseAge,
  refreshedFields,
  type StoredMeta,
  secondaryKey,
  storedFields,
  varyNames,
} from "./policy.js";
import { multipartBody, parseRange } from "./range.js";

/** A stored response, with everything a hit needs computed once when it was stored. */
export interface CachedResponse extends StoredMeta {
  /** Primary key (the URL) plus the request's values for the Vary fields. */
  key: string;
  url: string;
  body: Buffer;
  varyNames: string[];
  /** Headers ready for writeHead, without Age and Cache-Status. */
  flat: string[];
}

/** A response as it is stored: fields filtered, freshness and validators worked out once. */
export function makeEntry(
  url: string,
  requestHeaders: Headers,
  res: { status: number; headers: HeaderList },
  body: Buffer,
  requestTime: number,
  responseTime: number,
): CachedResponse {
  const cc = parseCacheControl(fieldLines(res.headers, "cache-control"));
  const headers = storedFields(res.headers, cc);
  const dateValue = parseHttpDate(fieldValue(res.headers, "date")) ?? responseTime;
  const names = varyNames(res.headers);
  if (!headers.some(([n]) => n === "content-length")) headers.push(["content-length", String(body.length)]);
  return {
    key: secondaryKey(url, names, requestHeaders),
    url,
    status: res.status,
    headers,
    body,
    requestTime,
    responseTime,
    dateValue,
    ageValue: parseAge(fieldValue(res.headers, "age")),
    lifetime: freshnessLifetime(res.status, cc, res.headers, dateValue, responseTime),
    cc,
    varyNames: names,
    etag: fieldValue(headers, "etag"),
    lastModified: fieldValue(headers, "last-modified"),
    flat: flattenHeaders(headers),
  };
}

/** The entry after a 304 from the origin (RFC 9111 §4.3.4): new fields, new times, new freshness. */
export function refreshedEntry(
  e: CachedResponse,
  incoming: HeaderList,
  requestTime: number,
  responseTime: number,
): CachedResponse {
  const headers = refreshedFields(e.headers, incoming);
  const cc = parseCacheControl(fieldLines(headers, "cache-control"));
  const dateValue = parseHttpDate(fieldValue(headers, "date")) ?? responseTime;
  return {
    ...e,
    headers,
    requestTime,
    responseTime,
    dateValue,
    ageValue: parseAge(fieldValue(incoming, "age")),
    lifetime: freshnessLifetime(e.status, cc, headers, dateValue, responseTime),
    cc,
    etag: fieldValue(headers, "etag"),
    lastModified: fieldValue(headers, "last-modified"),
    flat: flattenHeaders(headers),
  };
}

/** A response from a stored entry for one request: its conditionals, Range, HEAD, Age and Cache-Status. */
export function fromStore(method: string, headers: Headers, e: CachedResponse, age: number, cacheStatus: string): HttpResponse {
  if (notModified(method, headers, e)) {
    const flat: string[] = [];
    for (const [n, v] of e.headers) if (IN_304.has(n)) flat.push(n, Array.isArray(v) ? v.join(", ") : v);
    flat.push("age", String(age), "cache-status", cacheStatus);
    return { kind: "response", status: 304, headers: [], flat, body: null };
  }
  const head = method === "HEAD";
  const range = headers.range;
  if (typeof range === "string" && e.status === 200 && ifRangeMatches(headers, e)) {
    const r = parseRange(range, e.body.length);
    const tail = ["age", String(age), "cache-status", cacheStatus];
    if (r.kind === "unsatisfiable") {
      const flat = [
        ...without(e.flat, "content-length"),
        "content-range",
        `bytes */${e.body.length}`,
        "content-length",
        "0",
        ...tail,
      ];
      return { kind: "response", status: 416, headers: [], flat, body: null };
    }
    if (r.kind === "ranges" && r.ranges.length === 1) {
      const [start, end] = r.ranges[0] as [number, number];
      const flat = [
        ...without(e.flat, "content-length"),
        "content-range",
        `bytes ${start}-${end}/${e.body.length}`,
        "content-length",
        String(end - start + 1),
        ...tail,
      ];
      return { kind: "response", status: 206, headers: [], flat, body: head ? null : e.body.subarray(start, end + 1) };
    }
    if (r.kind === "ranges") {
      const mp = multipartBody(e.body, r.ranges, fieldValue(e.headers, "content-type"));
      const flat = [
        ...without(without(e.flat, "content-length"), "content-type"),
        "content-type",
        `multipart/byteranges; boundary=${mp.boundary}`,
        "content-length",
        String(mp.body.length),
        ...tail,
      ];
      return { kind: "response", status: 206, headers: [], flat, body: head ? null : mp.body };
    }
  }
  const flat = [...e.flat, "age", String(age), "cache-status", cacheStatus];
  return { kind: "response", status: e.status, headers: [], flat, body: head ? null : e.body };
}

function without(flat: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i] !== name) out.push(flat[i] as string, flat[i + 1] as string);
  return out;
}
