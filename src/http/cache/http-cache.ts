import { PEER_MAX_BODY, peerLink } from "../../cluster/peer-cache.js";
import type { Config } from "../../config/schema.js";
import { Tasks } from "../../lifecycle/tasks.js";
import type { Logger } from "../../log/logger.js";
import type { Handler, Stage } from "../../pipeline/stage.js";
import { type SharedHttp, SharedTier } from "../../shared/http.js";
import { PushBody } from "../body.js";
import type { HttpExchange, HttpOutcome, HttpResponse } from "../exchange.js";
import { decodeEntry, encodeEntry } from "./codec.js";
import { type Directives, parseCacheControl } from "./directives.js";
import { DiskStore } from "./disk-store.js";
import { type CachedResponse, fromStore, makeEntry, refreshedEntry } from "./entry.js";
import { MemoryStore } from "./memory-store.js";
import {
  currentAge,
  fieldLines,
  fieldValue,
  invalidated,
  mayStore,
  requestDirectives,
  reuse,
  secondaryKey,
  staleOnError,
  validators,
} from "./policy.js";
import { type CacheStore, TieredStore } from "./store.js";

type CacheConfig = Config["proxy"]["cache"];

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
 * The shared HTTP cache as a stage in front of the upstream fetch. It moves bytes and bookkeeping;
 * every RFC 9111 decision is a function in policy.ts. Memory tier, optional disk tier, request
 * collapsing, validation, Vary, Range, HEAD, invalidation and Cache-Status.
 */
export class HttpCache {
  private readonly store: CacheStore;
  private readonly memory: MemoryStore;
  private readonly disk: DiskStore | undefined;
  /** The tier shared with other boxes (shared.redis), behind memory and disk. */
  private readonly shared: SharedTier | undefined;
  /** Vary field names per URL: the secondary key of a request is known before any lookup. */
  private readonly varyOf = new Map<string, string[]>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Stale-while-revalidate refreshes: no client waits for them, so this owns their failures. */
  private readonly tasks: Tasks;
  private hits = 0;
  private misses = 0;
  private readonly peers = peerLink();
  private detachPeers: (() => void) | undefined;

  constructor(
    private readonly cfg: CacheConfig,
    log: Logger,
    /** Named in Cache-Status ("gatehouse; hit"), so a chain of caches can be read. */
    private readonly name = "gatehouse",
    /** The shared tier in force, read per use: it changes with shared.redis, this cache may not. */
    shared?: () => SharedHttp | undefined,
  ) {
    this.tasks = new Tasks(log, "cache");
    this.memory = new MemoryStore(cfg.memory);
    this.disk = cfg.disk > 0 ? new DiskStore(cfg.dir, cfg.disk, log, (url, names) => this.varyOf.set(url, names)) : undefined;
    const local = this.disk ? new TieredStore(this.memory, this.disk) : this.memory;
    this.shared = shared && new SharedTier(local, this.memory, shared, (url, names) => this.varyOf.set(url, names));
    this.store = this.shared ?? local;
  }

  /** Rebuilds the disk tier's index (asynchronously, metadata only). */
  async open(): Promise<void> {
    await this.store.open();
    for (const [url, names] of this.store.varyIndex()) this.varyOf.set(url, names);
    this.detachPeers = this.peers?.attach(this);
  }

  /** Waits for background refreshes and disk writes, then drops what is held. */
  async close(): Promise<void> {
    this.detachPeers?.();
    await this.tasks.settle();
    await this.store.close();
  }

  stage(): Stage<HttpExchange, HttpOutcome> {
    return { name: "cache", handle: (x, next) => this.handle(x, next, true) };
  }

  /** Who says what in Cache-Status: the front a request came through, else the proxy. */
  private label(x: HttpExchange): string {
    return x.front?.name ?? this.name;
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

  /** Removes every stored variant of a URL, from every tier; returns how many were found. */
  purge(url: string): number {
    this.varyOf.delete(url);
    return this.store.deleteUrl(url);
  }

  /**
   * Removes every stored URL that begins with `prefix` (as written: "http://intranet.lan/docs/"),
   * from every tier, entries a previous run left on disk included. Returns how many URLs and variants.
   */
  purgePrefix(prefix: string): { urls: number; purged: number } {
    // Collected first: purging while walking would change the maps being walked.
    const matching = [...this.store.urls()].filter((u) => u.startsWith(prefix));
    this.shared?.deletePrefix(prefix);
    let purged = 0;
    for (const url of matching) purged += this.purge(url);
    return { urls: matching.length, purged };
  }

  private async handle(x: HttpExchange, next: Fetch, collapse: boolean): Promise<HttpOutcome> {
    if (x.connect) return next(x);
    const url = x.url.href;
    if (x.method !== "GET" && x.method !== "HEAD") {
      const out = await next(x);
      if (out.kind !== "response") return out;
      for (const gone of invalidated(x.method, out.status, x.url, out.headers)) this.purge(gone);
      this.addStatus(x, out, "fwd=method");
      return out;
    }
    const reqCc = requestDirectives(x.headers);
    if (reqCc.has("no-store")) {
      const out = await next(x);
      if (out.kind === "response") this.addStatus(x, out, "fwd=request");
      return out;
    }
    const names = this.varyOf.get(url);
    // A URL this box never stored may be in the shared tier, which knows its Vary names.
    const got = names === undefined ? this.shared?.find(url, x.headers) : this.store.get(secondaryKey(url, names, x.headers));
    // The memory tier answers synchronously; only a disk or shared read costs a trip through the event loop.
    const entry = got instanceof Promise ? await got : got;
    if (entry) {
      const { reuse: how, age } = reuse(entry, reqCc, Date.now());
      if (how === "fresh") {
        this.hits++;
        x.log.cache = got instanceof Promise ? "TCP_HIT" : "TCP_MEM_HIT";
        return this.serve(x, entry, age, `hit; ttl=${entry.lifetime - age}`);
      }
      if (how === "stale-while-revalidate" && collapse) {
        this.hits++;
        x.log.cache = "TCP_STALE_HIT";
        this.tasks.run(`refresh ${url}`, () => this.revalidate(x, entry, next, true));
        return this.serve(x, entry, age, `hit; ttl=${entry.lifetime - age}; detail=stale-while-revalidate`);
      }
      if (reqCc.has("only-if-cached")) return this.gatewayTimeout(x);
      this.misses++;
      return this.revalidate(x, entry, next, false);
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
    const status = this.store.hasUrl(url) ? "fwd=vary-miss" : "fwd=uri-miss";
    return this.fetchAndStore(x, next, reqCc, status, plain);
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
        ["cache-status", `${this.label(x)}; fwd=miss; detail=only-if-cached`],
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
            parseCacheControl(fieldLines(out.headers, "cache-control")),
            out.headers,
          )
        : { store: false as const, why: "partial" };
    const length = Number(fieldValue(out.headers, "content-length") ?? Number.NaN);
    if (!storable.store || length > this.cfg.maxObject) {
      // Uncacheable: waiters go to the origin themselves at once, never queued behind this one.
      done();
      this.addStatus(x, out, status);
      return out;
    }
    this.addStatus(x, out, `${status}; stored`);
    const responseTime = Date.now();
    const finish = (body: Buffer) => {
      this.remember(makeEntry(x.url.href, x.headers, out, body, requestTime, responseTime));
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

  private remember(entry: CachedResponse): void {
    this.varyFor(entry);
    this.store.set(entry);
    if (this.peers && entry.body.length <= PEER_MAX_BODY) this.peers.share(encodeEntry(entry));
  }

  /** A new variant set replaces the old one if the Vary fields changed. */
  private varyFor(entry: CachedResponse): void {
    const previous = this.varyOf.get(entry.url);
    if (previous && previous.join(",") !== entry.varyNames.join(",")) this.purge(entry.url);
    this.varyOf.set(entry.url, entry.varyNames);
  }

  /** A response another worker stored: into this memory tier (its disk copy, if any, is that worker's). */
  adopt(bytes: Buffer): void {
    const entry = decodeEntry(bytes);
    if (!entry) return;
    this.varyFor(entry);
    this.memory.set(entry);
  }

  /** Conditional request to the origin for a stale entry (RFC 9111 §4.3). */
  private async revalidate(x: HttpExchange, e: CachedResponse, next: Fetch, background: boolean): Promise<HttpOutcome> {
    const extra = validators(e);
    const requestTime = Date.now();
    const cond =
      extra.length > 0
        ? x.with({
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
          })
        : x;
    let out: HttpOutcome;
    try {
      out = await next(cond);
    } catch (err) {
      // A background refresh has no client to serve: its owner logs the failure.
      if (background) throw err;
      const served = this.staleIfError(x, e);
      if (served) return served;
      throw err;
    }
    if (out.kind !== "response") return out;
    const now = Date.now();
    if (out.status === 304 && extra.length > 0) {
      if (out.body instanceof PushBody) out.body.abort(new Error("304 has no body"));
      const updated = refreshedEntry(e, out.headers, requestTime, now);
      this.store.set(updated);
      if (background) return out;
      x.log.cache = "TCP_REFRESH_UNMODIFIED";
      const served = this.serve(x, updated, currentAge(updated, now), "fwd=stale; fwd-status=304");
      // Cookies the origin set in this very 304 belong to this client: relayed, never stored.
      for (const value of [...fieldLines(out.headers, "set-cookie")]) served.flat?.push("set-cookie", value);
      return served;
    }
    if (out.status >= 500) {
      const served = this.staleIfError(x, e);
      if (served) {
        if (out.body instanceof PushBody) out.body.abort(new Error("replaced by a stale copy"));
        return served;
      }
    }
    // A full response replaces the entry; if it is not storable now, the old entry goes too.
    this.purge(x.url.href);
    const stored = this.keep(x, out, requestDirectives(x.headers), requestTime, "fwd=stale", () => {});
    if (background) {
      // Nobody reads a background refresh: drain it so it is stored and the connection freed.
      if (out.body instanceof PushBody) out.body.attach({ data: () => true, end: () => {}, error: () => {} });
      return stored;
    }
    x.log.cache = "TCP_REFRESH_MODIFIED";
    return stored;
  }

  /** The origin failed while an entry was being revalidated: serve the stale copy if allowed. */
  private staleIfError(x: HttpExchange, e: CachedResponse): HttpOutcome | undefined {
    const ok = staleOnError(e, requestDirectives(x.headers), Date.now());
    if (!ok) return undefined;
    x.log.cache = "TCP_REFRESH_FAIL_OLD";
    return this.serve(x, e, ok.age, `hit; ttl=${e.lifetime - ok.age}; detail=${ok.detail}`);
  }

  private serve(x: HttpExchange, e: CachedResponse, age: number, status: string): HttpResponse {
    const out = fromStore(x.method, x.headers, e, age, this.label(x), status);
    if (out.status === 304 && (x.log.cache === "TCP_MEM_HIT" || x.log.cache === "TCP_HIT")) x.log.cache = "TCP_IMS_HIT";
    return out;
  }

  private addStatus(x: HttpExchange, out: HttpResponse, status: string): void {
    const entry = `${this.label(x)}; ${status}`;
    const existing = out.headers.findIndex(([n]) => n === "cache-status");
    if (existing >= 0) {
      const [, v] = out.headers[existing] as [string, string];
      out.headers[existing] = ["cache-status", `${v}, ${entry}`];
    } else out.headers.push(["cache-status", entry]);
  }
}

const CONDITIONALS = new Set(["if-none-match", "if-modified-since", "if-range", "range", "if-match", "if-unmodified-since"]);

function stripConditionals(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (CONDITIONALS.has((raw[i] as string).toLowerCase())) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}
