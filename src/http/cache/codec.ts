import { createHash } from "node:crypto";
import { flattenHeaders, type HeaderList } from "../exchange.js";
import { parseCacheControl } from "./directives.js";
import type { CachedResponse } from "./entry.js";
import { fieldLines } from "./policy.js";

// One stored response as bytes: [4-byte meta length][meta JSON][body]. The disk tier's file format,
// and what a worker hands its peers (through the supervisor) when it stores a response.

export interface Meta {
  v: 1;
  key: string;
  url: string;
  status: number;
  headers: HeaderList;
  requestTime: number;
  responseTime: number;
  dateValue: number;
  ageValue: number;
  lifetime: number;
  varyNames: string[];
  etag?: string;
  lastModified?: string;
  size: number;
  sha256: string;
}

export function encodeEntry(e: CachedResponse): Buffer {
  const meta: Meta = {
    v: 1,
    key: e.key,
    url: e.url,
    status: e.status,
    headers: e.headers,
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    dateValue: e.dateValue,
    ageValue: e.ageValue,
    lifetime: e.lifetime,
    varyNames: e.varyNames,
    etag: e.etag,
    lastModified: e.lastModified,
    size: e.body.length,
    sha256: createHash("sha256").update(e.body).digest("hex"),
  };
  const json = Buffer.from(JSON.stringify(meta));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length, 0);
  return Buffer.concat([len, json, e.body]);
}

/** Undefined for bytes that are not a whole entry (truncated, corrupt: the body's SHA-256 differs). */
export function decodeEntry(buf: Buffer): CachedResponse | undefined {
  if (buf.length < 4) return undefined;
  const len = buf.readUInt32BE(0);
  if (4 + len > buf.length) return undefined;
  const meta = JSON.parse(buf.toString("utf8", 4, 4 + len)) as Meta;
  if (meta.v !== 1) return undefined;
  const body = buf.subarray(4 + len);
  if (body.length !== meta.size || createHash("sha256").update(body).digest("hex") !== meta.sha256) return undefined;
  return {
    key: meta.key,
    url: meta.url,
    status: meta.status,
    headers: meta.headers,
    body: Buffer.from(body),
    requestTime: meta.requestTime,
    responseTime: meta.responseTime,
    dateValue: meta.dateValue,
    ageValue: meta.ageValue,
    lifetime: meta.lifetime,
    cc: parseCacheControl(fieldLines(meta.headers, "cache-control")),
    varyNames: meta.varyNames,
    etag: meta.etag,
    lastModified: meta.lastModified,
    flat: flattenHeaders(meta.headers),
  };
}
