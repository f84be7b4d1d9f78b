import { createHash } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import { type DiskIndexEntry, type DiskLink, diskLink } from "../../cluster/disk-link.js";
import { Tasks } from "../../lifecycle/tasks.js";
import type { Logger } from "../../log/logger.js";
import { decodeEntry, encodeEntry, type Meta } from "./codec.js";
import type { CachedResponse } from "./entry.js";
import type { CacheStore } from "./store.js";

type IndexEntry = DiskIndexEntry;

/** Entries whose metadata is read at once while the index is rebuilt. */
const OPEN_AT_ONCE = 32;
/** The metadata of an entry is at its start; a read of this size almost always holds all of it. */
const META_READ = 8 * 1024;

/**
 * The disk tier: one file per response, [4-byte meta length][meta JSON][body], written to a temp
 * file and renamed so a crash never leaves half an entry under a real name. Every read checks the
 * body's length and SHA-256; a truncated or corrupt file is deleted and treated as a miss. Bounded
 * in bytes, least recently used out first. No call here blocks the event loop: the index is rebuilt
 * at start from each entry's metadata only, and writes and deletes run in the background, owned
 * by `tasks`. Any write error (a full or failing disk) turns the tier off with one warning; the
 * memory tier goes on alone. Shared by several processes (see src/cluster/disk-link.ts), only the
 * owner deletes files to make room.
 */
export class DiskStore implements CacheStore {
  private readonly index: LRUCache<string, IndexEntry>;
  private enabled = true;
  /** Keys by URL, so purges and miss reports never scan the whole index. */
  private readonly byUrl = new Map<string, Set<string>>();
  private seq = 0;
  private readonly tasks: Tasks;
  private readonly link: DiskLink | undefined = diskLink();
  private detach: (() => void) | undefined;
  /** Set while entries are dropped because another process removed their files. */
  private forgetting = false;

  constructor(
    private readonly dir: string,
    maxBytes: number,
    private readonly log: Logger,
    /** Told of entries another worker stored, whose Vary names its cache must know to find them. */
    private readonly learned: (url: string, varyNames: string[]) => void = () => {},
  ) {
    this.tasks = new Tasks(log, "disk cache");
    this.index = new LRUCache<string, IndexEntry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (e, key, reason) => {
        const keys = this.byUrl.get(e.url);
        keys?.delete(key);
        if (keys?.size === 0) this.byUrl.delete(e.url);
        if (this.forgetting) return;
        if (reason === "evict" && this.link?.role === "worker") return;
        if (reason === "evict" || reason === "delete" || reason === "set") this.remove(e.file);
        if (reason === "evict") this.link?.evicted(key);
      },
    });
  }

  /** Rebuilds the index from the files a previous run left, reading only their metadata. */
  async open(): Promise<void> {
    // A worker leaves cleaning up to the owner: a temp file may be another worker's write in progress.
    const cleans = this.link?.role !== "worker";
    try {
      await mkdir(this.dir, { recursive: true });
      const found: { key: string; entry: IndexEntry; mtime: number }[] = [];
      const files: string[] = [];
      for (const sub of await readdir(this.dir)) {
        if (!/^[0-9a-f]{2}$/.test(sub)) continue;
        for (const name of await readdir(join(this.dir, sub))) files.push(join(this.dir, sub, name));
      }
      for (let i = 0; i < files.length; i += OPEN_AT_ONCE) {
        await Promise.all(
          files.slice(i, i + OPEN_AT_ONCE).map(async (file) => {
            if (file.endsWith(".tmp")) return cleans ? this.remove(file) : undefined;
            const head = await readHead(file);
            if (!head) return cleans ? this.remove(file) : undefined;
            found.push({
              key: head.meta.key,
              entry: { file, size: head.fileSize, url: head.meta.url, varyNames: head.meta.varyNames },
              mtime: head.mtime,
            });
          }),
        );
      }
      found.sort((a, b) => a.mtime - b.mtime);
      for (const f of found) this.remember(f.key, f.entry);
      this.detach = this.link?.attach({
        learn: (key, entry) => {
          this.remember(key, entry);
          this.learned(entry.url, entry.varyNames);
        },
        touch: (key) => void this.index.get(key),
        forget: (keys) => {
          this.forgetting = true;
          try {
            for (const key of keys) this.index.delete(key);
          } finally {
            this.forgetting = false;
          }
        },
      });
    } catch (err) {
      this.disable(err);
    }
  }

  get active(): boolean {
    return this.enabled;
  }

  get(key: string): Promise<CachedResponse | undefined> | undefined {
    if (!this.enabled) return undefined;
    const entry = this.index.get(key);
    if (!entry) return undefined;
    return this.read(key, entry);
  }

  private async read(key: string, entry: IndexEntry): Promise<CachedResponse | undefined> {
    try {
      const decoded = decodeEntry(await readFile(entry.file));
      if (!decoded || decoded.key !== key) throw new Error("corrupt entry");
      this.link?.touched(key);
      return decoded;
    } catch (err) {
      // Gone: the owner removed it for room (or a purge did) before this process heard of it.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.warn({ file: entry.file }, "dropped a truncated or corrupt disk cache entry");
      this.index.delete(key);
      return undefined;
    }
  }

  set(e: CachedResponse): void {
    if (!this.enabled || e.body.length > this.index.maxSize) return;
    this.tasks.run(`store ${e.url}`, () => this.write(e));
  }

  private async write(e: CachedResponse): Promise<void> {
    const hash = createHash("sha256").update(e.key).digest("hex");
    const subdir = join(this.dir, hash.slice(0, 2));
    const file = join(subdir, `${hash}.entry`);
    const bytes = encodeEntry(e);
    const tmp = `${file}.${process.pid}.${++this.seq}.tmp`;
    try {
      await mkdir(subdir, { recursive: true });
      await writeFile(tmp, bytes);
      await rename(tmp, file);
      const entry = { file, size: bytes.length, url: e.url, varyNames: e.varyNames };
      if (this.enabled) this.remember(e.key, entry);
      this.link?.stored(e.key, entry);
    } catch (err) {
      await unlink(tmp).catch(() => {});
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

  private remove(file: string): void {
    this.tasks.run(`remove ${file}`, () =>
      unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      }),
    );
  }

  deleteUrl(url: string): number {
    const keys = [...(this.byUrl.get(url) ?? [])];
    for (const key of keys) this.index.delete(key);
    return keys.length;
  }

  urls(): Iterable<string> {
    return this.byUrl.keys();
  }

  *varyIndex(): Iterable<[string, string[]]> {
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

  async close(): Promise<void> {
    this.detach?.();
    await this.tasks.settle();
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

/** An entry's metadata, read from the start of its file without reading the body. */
async function readHead(file: string): Promise<{ meta: Meta; fileSize: number; mtime: number } | undefined> {
  const fh = await open(file, "r").catch(() => undefined);
  if (!fh) return undefined;
  try {
    const st = await fh.stat();
    let buf = Buffer.alloc(Math.min(META_READ, st.size));
    await fh.read(buf, 0, buf.length, 0);
    if (buf.length < 4) return undefined;
    const len = buf.readUInt32BE(0);
    if (4 + len > st.size) return undefined;
    if (4 + len > buf.length) {
      buf = Buffer.alloc(4 + len);
      await fh.read(buf, 0, buf.length, 0);
    }
    const meta = JSON.parse(buf.toString("utf8", 4, 4 + len)) as Meta;
    if (meta.v !== 1 || 4 + len + meta.size !== st.size) return undefined;
    return { meta, fileSize: st.size, mtime: st.mtimeMs };
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}
