import { RCODE_NAME, TYPE_NAME } from "../../dns/wire.js";
import type { AccessEvent, QueryEvent, SessionEvent } from "../../events/events.js";
import { sessionResult } from "../../log/access-log.js";
import type { RuleRef } from "../../pipeline/stage.js";
import { type LogLine, RecentLog } from "./recent.js";
import { type Counts, fieldIndex, type Row, Series } from "./series.js";
import { type HourCounts, type TopEntry, TopWindow } from "./top.js";

const MINUTE_MS = 60_000;
/** Squid results served from the cache: the origin sent no body for them. */
const HITS = new Set([
  "TCP_HIT",
  "TCP_MEM_HIT",
  "TCP_IMS_HIT",
  "TCP_REFRESH_UNMODIFIED",
  "TCP_STALE_HIT",
  "TCP_REFRESH_FAIL_OLD",
]);
const MISSES = new Set(["TCP_MISS", "TCP_REFRESH_MODIFIED"]);
const TOP_KINDS = ["sites", "domains", "blocked", "clients"] as const;
export type TopKind = (typeof TOP_KINDS)[number];

/** A DNS content server as the dashboard shows it. */
export interface UpstreamHealth {
  server: string;
  /** up: answered lately; failing: its last queries failed; idle: nothing asked lately. */
  state: "up" | "failing" | "idle";
  answers: number;
  failures: number;
  /** Mean time to an answer over the last 15 minutes, when there were answers. */
  latencyMs?: number;
  lastAnswer?: number;
  lastFailure?: number;
}

/** What the history file holds: plain rows and hours, summable across runs and processes. */
export interface StatsSnapshot {
  version: 1;
  minutes: Row[];
  tops: Record<TopKind, HourCounts[]>;
}

interface UpstreamTally {
  /** Per minute slot of the last 15 minutes: [minute, answers, ms, failures]. */
  slots: [number, number, number, number][];
  lastAnswer: number;
  lastFailure: number;
}

const UPSTREAM_MINUTES = 15;
const MAX_UPSTREAMS = 64;

export interface StatsOptions {
  /** Bytes for the recent lines. */
  recentBytes: number;
  /** Rule files as the admin knows them (block/ads.txt), not as paths on the server. */
  rulePath: (file: string) => string;
  /** The content servers a query for this name goes to (for failures, which no single server answered). */
  upstreamsFor: (name: string) => readonly string[];
  now?: () => number;
}

/**
 * Everything the dashboard shows, counted from access and query events as they happen: per-second
 * and per-minute counts, top lists per hour, the recent lines, the upstreams' answers. Nothing is
 * read back from the proxy or the resolver, and everything is plain counts per key per period, so
 * worker processes could each keep one and a supervisor add them up.
 */
export class Stats {
  readonly seconds = new Series(120, 1000);
  readonly minutes = new Series(1440, MINUTE_MS);
  readonly tops: Record<TopKind, TopWindow>;
  readonly recent: RecentLog;
  private readonly upstreams = new Map<string, UpstreamTally>();
  readonly now: () => number;
  private readonly rulePaths = new Map<string, string>();

  constructor(private readonly o: StatsOptions) {
    this.now = o.now ?? Date.now;
    this.recent = new RecentLog(o.recentBytes);
    this.tops = {
      sites: new TopWindow({ keep: 100, cap: 5000, hours: 24 }),
      domains: new TopWindow({ keep: 100, cap: 5000, hours: 24 }),
      blocked: new TopWindow({ keep: 100, cap: 5000, hours: 24 }),
      clients: new TopWindow({ keep: 100, cap: 2000, hours: 24 }),
    };
  }

  private count(field: keyof Counts, now: number, n = 1): void {
    const i = fieldIndex[field];
    this.seconds.add(i, now, n);
    this.minutes.add(i, now, n);
  }

  onAccess(e: AccessEvent): void {
    const now = this.now();
    const name = hostOf(e.url, e.method);
    const rule = e.decision?.rule;
    const blocked =
      e.decision !== undefined && (e.decision.action === "block" || e.decision.action === "deny") && rule !== undefined;
    this.count("requests", now);
    this.count("bytes", now, e.bytes);
    if (HITS.has(e.result)) {
      this.count("hits", now);
      this.count("savedBytes", now, e.bytes);
    } else if (MISSES.has(e.result)) this.count("misses", now);
    this.tops.clients.add(e.client, now);
    const where = rule ? this.where(rule) : undefined;
    if (blocked) {
      this.count("blockedRequests", now);
      this.tops.blocked.add(name, now, where && `${where}: ${(rule as RuleRef).text}`);
    } else if (e.result !== "TCP_DENIED" && e.result !== "NONE_NONE") this.tops.sites.add(name, now);
    this.recent.push({
      time: e.start,
      kind: "http",
      client: e.client,
      name,
      request: `${e.method} ${e.url.length > 1000 ? `${e.url.slice(0, 1000)}…` : e.url}`,
      result: e.result,
      status: String(e.status),
      rule: where,
      ruleText: rule?.text,
      blocked,
      ms: Math.round(e.durationMs * 10) / 10,
      bytes: e.bytes,
    } satisfies Omit<LogLine, "seq">);
  }

  onQuery(e: QueryEvent): void {
    const now = this.now();
    const blocked = e.result === "blocked";
    this.count("queries", now);
    if (e.result === "cached" || e.result === "stale") this.count("cachedQueries", now);
    if (e.result === "error") this.count("failedQueries", now);
    this.tops.clients.add(e.client, now);
    const where = e.rule ? this.where(e.rule) : undefined;
    if (blocked) {
      this.count("blockedQueries", now);
      this.tops.blocked.add(e.name, now, where && `${where}: ${(e.rule as RuleRef).text}`);
    } else if (e.result !== "refused" && e.result !== "ratelimited" && e.result !== "formerr") this.tops.domains.add(e.name, now);
    if (e.upstream !== undefined && e.result === "forwarded") this.upstreamAnswer(e.upstream, e.ms, now);
    // The resolver's last word on a query every upstream failed is the forward stage's SERVFAIL.
    else if (e.result === "error" && e.upstream === undefined && e.decisions.at(-1)?.stage === "forward") {
      for (const server of this.o.upstreamsFor(e.name)) this.upstreamFailure(server, now);
    }
    this.recent.push({
      time: e.time,
      kind: "dns",
      client: e.client,
      name: e.name,
      request: TYPE_NAME[e.type] ?? `TYPE${e.type}`,
      result: e.result,
      status: e.rcode < 0 ? "-" : (RCODE_NAME[e.rcode] ?? String(e.rcode)),
      rule: where,
      ruleText: e.rule?.text,
      blocked,
      ms: Math.round(e.ms * 100) / 100,
    });
  }

  /** A connection through an FTP or mail front: a line on the logs page, its client in the top list. */
  onSession(e: SessionEvent): void {
    const now = this.now();
    this.tops.clients.add(e.client, now);
    const rule = e.decision?.rule;
    this.recent.push({
      time: e.start,
      kind: "session",
      client: e.client,
      name: e.front,
      request: `${e.protocol.toUpperCase()} ${e.protocol}://${e.front} → ${e.backend}`,
      result: sessionResult(e),
      status: e.tls,
      rule: rule ? this.where(rule) : undefined,
      ruleText: rule?.text,
      blocked: e.result === "refused" && rule !== undefined,
      ms: Math.round(e.durationMs),
      bytes: e.bytesIn + e.bytesOut,
    });
  }

  private where(rule: RuleRef): string {
    let path = this.rulePaths.get(rule.file);
    if (path === undefined) {
      path = this.o.rulePath(rule.file);
      if (this.rulePaths.size > 1000) this.rulePaths.clear();
      this.rulePaths.set(rule.file, path);
    }
    return `${path}:${rule.line}`;
  }

  private tally(server: string, now: number): [number, number, number, number] | undefined {
    let t = this.upstreams.get(server);
    if (!t) {
      if (this.upstreams.size >= MAX_UPSTREAMS) return undefined;
      t = { slots: [], lastAnswer: 0, lastFailure: 0 };
      this.upstreams.set(server, t);
    }
    const minute = Math.floor(now / MINUTE_MS);
    let slot = t.slots.at(-1);
    if (!slot || slot[0] !== minute) {
      slot = [minute, 0, 0, 0];
      t.slots.push(slot);
      while ((t.slots[0] as [number, number, number, number])[0] <= minute - UPSTREAM_MINUTES) t.slots.shift();
    }
    return slot;
  }

  private upstreamAnswer(server: string, ms: number, now: number): void {
    const slot = this.tally(server, now);
    if (!slot) return;
    slot[1]++;
    slot[2] += ms;
    (this.upstreams.get(server) as UpstreamTally).lastAnswer = now;
  }

  private upstreamFailure(server: string, now: number): void {
    const slot = this.tally(server, now);
    if (!slot) return;
    slot[3]++;
    (this.upstreams.get(server) as UpstreamTally).lastFailure = now;
  }

  /** The configured servers first (in order), then any other that answered lately. */
  upstreamHealth(configured: readonly string[]): UpstreamHealth[] {
    const now = this.now();
    const since = Math.floor(now / MINUTE_MS) - UPSTREAM_MINUTES;
    const names = [...new Set([...configured, ...this.upstreams.keys()])];
    return names.map((server) => {
      const t = this.upstreams.get(server);
      let answers = 0;
      let ms = 0;
      let failures = 0;
      for (const [minute, a, m, f] of t?.slots ?? []) {
        if (minute <= since) continue;
        answers += a;
        ms += m;
        failures += f;
      }
      const lastAnswer = t?.lastAnswer || undefined;
      const lastFailure = t?.lastFailure || undefined;
      const state =
        lastFailure !== undefined && lastFailure >= (lastAnswer ?? 0) && now - lastFailure < UPSTREAM_MINUTES * MINUTE_MS
          ? "failing"
          : lastAnswer !== undefined && now - lastAnswer < UPSTREAM_MINUTES * MINUTE_MS
            ? "up"
            : "idle";
      const h: UpstreamHealth = { server, state, answers, failures, lastAnswer, lastFailure };
      if (answers > 0) h.latencyMs = Math.round((ms / answers) * 10) / 10;
      return h;
    });
  }

  top(kind: TopKind, n: number): TopEntry[] {
    return this.tops[kind].top(n, this.now());
  }

  snapshot(): StatsSnapshot {
    const now = this.now();
    return {
      version: 1,
      minutes: this.minutes.rows(now),
      tops: Object.fromEntries(TOP_KINDS.map((k) => [k, this.tops[k].snapshot()])) as Record<TopKind, HourCounts[]>,
    };
  }

  /** Adds a snapshot counted elsewhere (the previous run); anything malformed in it is skipped. */
  absorb(s: Partial<StatsSnapshot>): void {
    const now = this.now();
    if (Array.isArray(s.minutes)) this.minutes.absorb(s.minutes, now);
    for (const k of TOP_KINDS) {
      const hours = s.tops?.[k];
      if (Array.isArray(hours)) this.tops[k].absorb(hours.filter(isHour), now);
    }
  }
}

function isHour(h: unknown): h is HourCounts {
  const x = h as HourCounts;
  return typeof x === "object" && x !== null && typeof x.start === "number" && typeof x.counts === "object" && x.counts !== null;
}

/** The host of an access line's URL without parsing it: "http://a.example:8080/x" -> "a.example". */
export function hostOf(url: string, method: string): string {
  let rest = url;
  if (method !== "CONNECT") {
    const scheme = url.indexOf("://");
    if (scheme < 0) return url.slice(0, 255);
    rest = url.slice(scheme + 3);
    const slash = rest.search(/[/?#]/);
    if (slash >= 0) rest = rest.slice(0, slash);
    const at = rest.lastIndexOf("@");
    if (at >= 0) rest = rest.slice(at + 1);
  }
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    return (close > 0 ? rest.slice(1, close) : rest).toLowerCase();
  }
  const colon = rest.lastIndexOf(":");
  return (colon >= 0 ? rest.slice(0, colon) : rest).toLowerCase().slice(0, 255);
}
