import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import type { Logger } from "../../log/logger.js";
import { flattenHeaders, type HeaderList } from "../exchange.js";
import { parseCacheControl } from "./directives.js";
import type { CachedResponse } from "./entry.js";

interface Meta {
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

interface IndexEntry {
  file: string;
  size: number;
  url: string;
  varyNames: string[];
}

/**
 * The disk tier: one file per response, [4-byte meta length][meta JSON][body], written to a temp
 * file and renamed so a crash never leaves half an entry under a real name. Every read checks the
 * body's length and SHA-256; a truncated or corrupt file is deleted and treated as a miss. Bounded
 * in bytes, least recently used out first. Any write error (a full or failing disk) turns the tier
 * off with one warning; the memory tier goes on alone.
 */
export class DiskStore {
  private readonly index: LRUCache<string, IndexEntry>;
  private enabled = true;
  /** Keys by URL, so purges and miss reports never scan the whole index. */
  private readonly byUrl = new Map<string, Set<string>>();
  private seq = 0;

  constructor(
    private readonly dir: string,
    maxBytes: number,
    private readonly log: Logger,
  ) {
    this.index = new LRUCache<string, IndexEntry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (e, key, reason) => {
        const keys = this.byUrl.get(e.url);
        keys?.delete(key);
        if (keys?.size === 0) this.byUrl.delete(e.url);
        if (reason === "evict" || reason === "delete" || reason === "set") void unlink(e.file).catch(() => {});
      },
    });
  }

  /** Rebuilds the index from the files a previous run left. */
  open(): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      const found: { key: string; entry: IndexEntry; mtime: number }[] = [];
      for (const sub of readdirSync(this.dir)) {
        const subdir = join(this.dir, sub);
        if (!/^[0-9a-f]{2}$/.test(sub)) continue;
        for (const name of readdirSync(subdir)) {
          const file = join(subdir, name);
          if (name.endsWith(".tmp")) {
            void unlink(file).catch(() => {});
            continue;
          }
          const meta = readMeta(file);
          if (!meta) {
            void unlink(file).catch(() => {});
            continue;
          }
          const st = statSync(file);
          found.push({
            key: meta.key,
            entry: { file, size: st.size, url: meta.url, varyNames: meta.varyNames },
            mtime: st.mtimeMs,
          });
        }
      }
      found.sort((a, b) => a.mtime - b.mtime);
      for (const f of found) this.remember(f.key, f.entry);
    } catch (err) {
      this.disable(err);
    }
  }

  get active(): boolean {
    return this.enabled;
  }

  has(key: string): boolean {
    return this.enabled && this.index.has(key);
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    const entry = this.index.get(key);
    if (!entry) return undefined;
    try {
      const buf = await readFile(entry.file);
      const decoded = decode(buf);
      if (!decoded || decoded.key !== key) throw new Error("corrupt entry");
      return decoded;
    } catch {
      this.log.warn({ file: entry.file }, "dropped a truncated or corrupt disk cache entry");
      this.index.delete(key);
      return undefined;
    }
  }

  async set(e: CachedResponse): Promise<void> {
    if (!this.enabled || e.body.length > this.index.maxSize) return;
    const hash = createHash("sha256").update(e.key).digest("hex");
    const subdir = join(this.dir, hash.slice(0, 2));
    const file = join(subdir, `${hash}.entry`);
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
    const tmp = `${file}.${process.pid}.${++this.seq}.tmp`;
    try {
      mkdirSync(subdir, { recursive: true });
      await writeFile(tmp, Buffer.concat([len, json, e.body]));
      await rename(tmp, file);
      this.remember(e.key, { file, size: 4 + json.length + e.body.length, url: e.url, varyNames: e.varyNames });
    } catch (err) {
      void unlink(tmp).catch(() => {});
      this.disable(err);
    }
  }

  private remember(key: string, entry: IndexEntry): void {
    this.index.set(key, entry, { noDisposeOnSet: true });
    if (!this.index.has(key)) return;
    let keys = this.byUrl.get(entry.url);
    if (!keys) this.byUrl.set(entry.url, (keys = new Set()));
    keys.add(key);
  }

  deleteUrl(url: string): number {
    const keys = [...(this.byUrl.get(url) ?? [])];
    for (const key of keys) this.index.delete(key);
    return keys.length;
  }

  /** Vary field names of every URL on disk, to seed lookups after a restart. */
  *varyIndex(): Generator<[url: string, names: string[]]> {
    for (const e of this.index.values()) yield [e.url, e.varyNames];
  }

  hasUrl(url: string): boolean {
    return this.byUrl.has(url);
  }

  get entries(): number {
    return this.index.size;
  }

  get bytes(): number {
    return this.index.calculatedSize;
  }

  private disable(err: unknown): void {
    if (!this.enabled) return;
    this.enabled = false;
    this.log.warn(
      { dir: this.dir, err: (err as Error).message },
      "disk cache turned off (disk full or failing); caching in memory only",
    );
  }
}

function readMeta(file: string): Meta | undefined {
  try {
    const buf = readFileSync(file);
    return decodeMeta(buf)?.meta;
  } catch {
    return undefined;
  }
}

function decodeMeta(buf: Buffer): { meta: Meta; bodyStart: number } | undefined {
  if (buf.length < 4) return undefined;
  const len = buf.readUInt32BE(0);
  if (4 + len > buf.length) return undefined;
  const meta = JSON.parse(buf.toString("utf8", 4, 4 + len)) as Meta;
  if (meta.v !== 1) return undefined;
  return { meta, bodyStart: 4 + len };
}

function decode(buf: Buffer): CachedResponse | undefined {
  const parsed = decodeMeta(buf);
  if (!parsed) return undefined;
  const { meta, bodyStart } = parsed;
  const body = buf.subarray(bodyStart);
  if (body.length !== meta.size || createHash("sha256").update(body).digest("hex") !== meta.sha256) return undefined;
  const flat = flattenHeaders(meta.headers);
  const cc = parseCacheControl(meta.headers.filter(([n]) => n === "cache-control").map(([, v]) => String(v)));
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
    cc,
    varyNames: meta.varyNames,
    etag: meta.etag,
    lastModified: meta.lastModified,
    flat,
  };
}
