import { LRUCache } from "lru-cache";
import type { Config } from "../config/schema.js";
import type { Tasks } from "../lifecycle/tasks.js";
import type { Handler, Stage } from "../pipeline/stage.js";
import type { DnsExchange, DnsOutcome, StoredAnswer } from "./exchange.js";
import { RCODE, TYPE_NAME } from "./wire.js";

type CacheConfig = Config["dns"]["cache"];

export interface Entry {
  answer: StoredAnswer;
  storedAt: number;
  /** Seconds the answer may be served fresh (after min/max TTL). */
  ttl: number;
  hits: number;
  refreshing: boolean;
}

/** An entry that may be served fresh, and its age in whole seconds. */
export interface FreshEntry {
  readonly entry: Entry;
  readonly age: number;
}

// RFC 8767 §4: a stale answer goes out with a short TTL so clients come back soon.
const STALE_TTL = 30;
const PREFETCH_WINDOW = 0.1;
// What an entry costs beside its answer bytes: the key, the entry and AnswerInfo objects, lru-cache's
// slots. Measured with heap snapshots of a full cache at about 350 bytes; rounded up.
const ENTRY_OVERHEAD = 400;

/**
 * The DNS cache: answers by name, type and class, bounded in bytes (dns.cache.size, counting each
 * answer's wire bytes plus its bookkeeping) and in entries (dns.cache.entries), with lru-cache
 * (eviction is O(1), so the miss path stays flat as the cache fills). An answer larger than
 * dns.cache.maxAnswer is served but not kept, so a few huge answers cannot push out thousands of
 * ordinary ones. Concurrent misses for one key share one upstream query. Popular answers are
 * refreshed in the background shortly before they expire; expired answers are kept up to
 * `serveStale` and used only when every upstream fails.
 */
export class DnsCache {
  private readonly lru: LRUCache<string, Entry> | undefined;
  private readonly inflight = new Map<string, Promise<DnsOutcome>>();

  constructor(
    private readonly cfg: CacheConfig,
    /** Epoch milliseconds; tests move it instead of sleeping through TTLs. */
    private readonly now: () => number = Date.now,
  ) {
    if (cfg.entries > 0 && cfg.size > 0) {
      this.lru = new LRUCache<string, Entry>({
        max: cfg.entries,
        maxSize: cfg.size,
        sizeCalculation: (e, key) => entrySize(key, e.answer),
      });
    }
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /** Bytes counted against dns.cache.size. */
  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  clear(): void {
    this.lru?.clear();
  }

  /** The cache stage; background refreshes run as `tasks` of the resolver that serves through it. */
  stage(tasks: Tasks): Stage<DnsExchange, DnsOutcome> {
    return { name: "cache", handle: (x, next) => this.handle(x, next, tasks) };
  }

  /** The key of a question's entry: DO clients get DNSSEC records the others do not, so a separate one. */
  static key(type: number, qclass: number, dnssecOk: boolean, name: string): string {
    return `${type}/${qclass}/${dnssecOk ? "do/" : ""}${name}`;
  }

  /**
   * The entry under `key` if it may still be served fresh, with its age in whole seconds; nothing is
   * counted (the fast path checks everything else before it calls served()).
   */
  fresh(key: string, now: number): FreshEntry | undefined {
    const entry = this.lru?.get(key);
    if (!entry) return undefined;
    const age = Math.floor((now - entry.storedAt) / 1000);
    return age < entry.ttl ? { entry, age } : undefined;
  }

  /**
   * A fresh entry goes out: counted as a hit, and a popular one is refreshed in the background
   * shortly before it expires. `refresh` makes the refresh's own exchange (the client's is answered
   * already); `next` asks upstream.
   */
  served(
    key: string,
    hit: FreshEntry,
    refresh: () => DnsExchange,
    next: Handler<DnsExchange, DnsOutcome>,
    tasks: Tasks,
  ): DnsOutcome & { kind: "upstream" } {
    const { entry, age } = hit;
    entry.hits++;
    if (
      this.cfg.prefetch &&
      !entry.refreshing &&
      entry.hits > 1 &&
      entry.ttl >= 10 &&
      entry.ttl - age <= entry.ttl * PREFETCH_WINDOW
    ) {
      entry.refreshing = true;
      const x = refresh();
      tasks.run(`prefetch ${x.name} ${TYPE_NAME[x.type] ?? x.type}`, () =>
        this.fetch(key, x, next).finally(() => {
          entry.refreshing = false;
        }),
      );
    }
    return { kind: "upstream", answer: entry.answer, age, result: "cached" };
  }

  private async handle(x: DnsExchange, next: Handler<DnsExchange, DnsOutcome>, tasks: Tasks): Promise<DnsOutcome> {
    const lru = this.lru;
    if (!lru) return next(x);
    const key = DnsCache.key(x.type, x.qclass, x.dnssecOk, x.name);
    const now = this.now();
    if (x.mode === "explain") return this.explain(lru.peek(key), x, next, now);
    const hit = this.fresh(key, now);
    if (hit) return this.served(key, hit, () => ({ ...x, decisions: [], log: {} }), next, tasks);
    // Kept past its TTL: served only if every upstream fails.
    const entry = lru.peek(key);
    let outcome: DnsOutcome;
    try {
      outcome = await this.fetch(key, x, next);
    } catch (err) {
      const stale = this.stale(entry, now);
      if (stale) return stale;
      throw err;
    }
    if (outcome.kind === "upstream" && outcome.answer.info.rcode === RCODE.SERVFAIL) return this.stale(entry, now) ?? outcome;
    return outcome;
  }

  /** explain: what the cache holds now, without counting a hit, refreshing, or asking upstream. */
  private explain(entry: Entry | undefined, x: DnsExchange, next: Handler<DnsExchange, DnsOutcome>, now: number) {
    if (!entry) return next(x);
    const age = Math.floor((now - entry.storedAt) / 1000);
    if (age < entry.ttl) {
      x.decisions.push({ stage: "cache", action: "answer", reason: `cached answer, ${entry.ttl - age} s of its TTL left` });
      return Promise.resolve<DnsOutcome>({ kind: "upstream", answer: entry.answer, age, result: "cached" });
    }
    if (this.stale(entry, now)) {
      x.decisions.push({ stage: "cache", action: "answer", reason: "expired answer kept: served only if every upstream fails" });
    }
    return next(x);
  }

  private stale(entry: Entry | undefined, now: number): DnsOutcome | undefined {
    if (!entry || this.cfg.serveStale === 0) return undefined;
    if (now - entry.storedAt > entry.ttl * 1000 + this.cfg.serveStale) return undefined;
    return { kind: "upstream", answer: entry.answer, age: 0, result: "stale", staleTtl: STALE_TTL };
  }

  /** One upstream query per key at a time; its answer is stored if it may be. */
  private fetch(key: string, x: DnsExchange, next: Handler<DnsExchange, DnsOutcome>): Promise<DnsOutcome> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = next(x)
      .then((outcome) => {
        if (outcome.kind === "upstream") this.store(key, outcome.answer);
        return outcome;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private store(key: string, answer: StoredAnswer): void {
    const { info } = answer;
    if (info.truncated || (info.rcode !== RCODE.NOERROR && info.rcode !== RCODE.NXDOMAIN)) return;
    if (answer.bytes.length > this.cfg.maxAnswer) return;
    // No TTL (a negative answer without SOA, RFC 2308 §5): not cached.
    if (info.minTtl === undefined) return;
    const negative = info.answerCount === 0;
    const max = negative ? Math.min(this.cfg.negativeMaxTtl, this.cfg.maxTtl) : this.cfg.maxTtl;
    const ttl = Math.min(Math.max(info.minTtl, Math.ceil(this.cfg.minTtl / 1000)), Math.floor(max / 1000));
    if (ttl <= 0) return;
    // Served TTLs count down from what we keep, never from more.
    for (const off of info.ttlOffsets) {
      const t = answer.bytes.readUInt32BE(off);
      if (t > ttl) answer.bytes.writeUInt32BE(ttl, off);
      else if (t < ttl && negative === false && this.cfg.minTtl > 0) answer.bytes.writeUInt32BE(ttl, off);
    }
    this.lru?.set(key, { answer, storedAt: this.now(), ttl, hits: 0, refreshing: false });
  }
}

function entrySize(key: string, answer: StoredAnswer): number {
  const { info } = answer;
  let size = ENTRY_OVERHEAD + answer.bytes.length + key.length * 2 + info.ttlOffsets.length * 8 + info.addresses.length * 96;
  for (const c of info.cnameTargets) size += 32 + c.length * 2;
  return size;
}
