import { flattenHeaders, type HeaderList, type Headers, type HttpResponse } from "../exchange.js";
import { isFieldValue, type PreparedHead, prepareHead } from "../prepared-head.js";
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
  /**
   * The same as a serialized header block for full responses to HTTP/1.1 clients, made when the
   * entry is stored here, or when one read from disk, the shared tier or another worker enters the
   * memory tier; null when only writeHead can write these fields.
   */
  head?: PreparedHead | null;
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
  const flat = flattenHeaders(headers);
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
    flat,
    head: prepareHead(res.status, flat) ?? null,
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
  const flat = flattenHeaders(headers);
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
    flat,
    head: prepareHead(e.status, flat) ?? null,
  };
}

/** The entry's prepared header block, made now if the entry came from a tier that stores none. */
export function preparedHead(e: CachedResponse): PreparedHead | null {
  if (e.head === undefined) e.head = prepareHead(e.status, e.flat) ?? null;
  return e.head;
}

const NO_FIELDS = Object.freeze([]) as unknown as HeaderList;

/**
 * A full response from a stored entry (neither 304 nor partial). Its header block was prepared
 * when the entry was stored, so an HTTP/1.1 client gets it with only Age, Cache-Status and the
 * connection's fields added, and no list of fields is made for it; every other reader (HTTP/2,
 * HTTP/1.0, a stage adding a field) reads `flat`, the same fields as writeHead's list.
 */
export class StoredHit implements HttpResponse {
  readonly kind = "response";
  readonly status: number;
  /** Empty and frozen: the fields are the entry's, in `flat`. */
  readonly headers = NO_FIELDS;
  private fields: string[] | undefined;

  constructor(
    private readonly entry: CachedResponse,
    readonly head: PreparedHead,
    private readonly age: number,
    /** Cache-Status is "label; detail": who answered (the proxy, a front), then how. */
    private readonly label: string,
    private readonly detail: string,
    readonly body: Buffer | null,
  ) {
    this.status = entry.status;
  }

  /** Made on first read and kept, so whatever a reader adds to it is what gets written. */
  get flat(): string[] {
    this.fields ??= [...this.entry.flat, "age", String(this.age), "cache-status", `${this.label}; ${this.detail}`];
    return this.fields;
  }

  set flat(fields: string[]) {
    this.fields = fields;
  }

  /** This request's fields, serialized to follow the prepared head; undefined once `flat` was read. */
  preparedLines(): string | undefined {
    // The detail is the cache's own ASCII; only the label comes from the config.
    if (this.fields !== undefined || !validLabel(this.label)) return undefined;
    return `age: ${this.age}\r\ncache-status: ${this.label}; ${this.detail}\r\n`;
  }

  get contentType(): string | undefined {
    const flat = this.entry.flat;
    for (let i = 0; i < flat.length; i += 2) if (flat[i] === "content-type") return flat[i + 1];
    return undefined;
  }
}

// The label of the last hit, checked once: hits come with one of a few labels, mostly the same.
let checkedLabel = "";
let labelIsValue = true;

function validLabel(label: string): boolean {
  if (label !== checkedLabel) {
    checkedLabel = label;
    labelIsValue = isFieldValue(label);
  }
  return labelIsValue;
}

/**
 * A response from a stored entry for one request: its conditionals, Range, HEAD, Age and
 * Cache-Status ("label; detail").
 */
export function fromStore(
  method: string,
  headers: Headers,
  e: CachedResponse,
  age: number,
  label: string,
  detail: string,
): HttpResponse {
  if (notModified(method, headers, e)) {
    const flat: string[] = [];
    for (const [n, v] of e.headers) if (IN_304.has(n)) flat.push(n, Array.isArray(v) ? v.join(", ") : v);
    flat.push("age", String(age), "cache-status", `${label}; ${detail}`);
    return { kind: "response", status: 304, headers: [], flat, body: null };
  }
  const head = method === "HEAD";
  const range = headers.range;
  if (typeof range === "string" && e.status === 200 && ifRangeMatches(headers, e)) {
    const r = parseRange(range, e.body.length);
    const tail = ["age", String(age), "cache-status", `${label}; ${detail}`];
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
  const prepared = preparedHead(e);
  if (prepared) return new StoredHit(e, prepared, age, label, detail, head ? null : e.body);
  const flat = [...e.flat, "age", String(age), "cache-status", `${label}; ${detail}`];
  return { kind: "response", status: e.status, headers: [], flat, body: head ? null : e.body };
}

function without(flat: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i] !== name) out.push(flat[i] as string, flat[i + 1] as string);
  return out;
}
