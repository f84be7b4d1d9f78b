import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { TYPE_NAME } from "../dns/wire.js";
import type { AccessEvent, QueryEvent, RulesEvent } from "../events/events.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import type { UpstreamHealth } from "./stats/stats.js";

const HITS = /^TCP_(HIT|MEM_HIT|IMS_HIT|REFRESH_UNMODIFIED|STALE_HIT|REFRESH_FAIL_OLD)$/;
const MISSES = /^TCP_(MISS|REFRESH_MODIFIED)$/;
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

let processRegistry: Registry | undefined;

/**
 * Process figures (CPU, memory, event loop, GC) are the process's, however many gatehouse
 * instances it holds: one registry for them, made once, so tests that start many do not stack
 * up GC observers.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface MetricsSource {
  cache(): CacheStats;
  upstreams(): UpstreamHealth[];
  fronts(): { front: string; backends: { backend: string; up: boolean }[] }[];
  /** A rule file as the admin knows it (block/ads.txt). */
  rulePath(file: string): string;
}

/**
 * /metrics in Prometheus text format. Events are tallied into plain maps as they come (a map add
 * per event, where a prom-client label lookup would cost a hash of the labels on every DNS
 * query); the tallies become metrics only when Prometheus scrapes. Latency histograms observe
 * only what went to an upstream.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly http = new Map<string, number>();
  private readonly dns = new Map<string, number>();
  private readonly blocked = new Map<string, number>();
  private cache = { hits: 0, misses: 0, hitBytes: 0, bytes: 0 };
  private rules = { reloads: 0, errors: 0, entries: 0, files: 0 };
  private readonly httpUpstream: Histogram;
  private readonly dnsUpstream: Histogram<"upstream">;

  constructor(private readonly source: MetricsSource) {
    const r = [this.registry];
    const fromTally = (tally: Map<string, number>, names: string[]) =>
      function (this: Counter<string>) {
        this.reset();
        for (const [key, n] of tally) {
          const values = key.split("\t");
          this.inc(Object.fromEntries(names.map((name, i) => [name, values[i] ?? ""])), n);
        }
      };
    new Counter({
      name: "gatehouse_http_requests_total",
      help: "Proxied requests and tunnels, by Squid result and HTTP status",
      labelNames: ["result", "status"],
      registers: r,
      collect: fromTally(this.http, ["result", "status"]),
    });
    new Counter({
      name: "gatehouse_dns_queries_total",
      help: "DNS queries from clients, by result and query type",
      labelNames: ["result", "type"],
      registers: r,
      collect: fromTally(this.dns, ["result", "type"]),
    });
    new Counter({
      name: "gatehouse_blocked_total",
      help: "Requests and queries blocked or denied by a rule, by where (proxy, dns) and the rule's file",
      labelNames: ["source", "list"],
      registers: r,
      collect: fromTally(this.blocked, ["source", "list"]),
    });
    const value = (name: string, help: string, read: () => number, kind: "counter" | "gauge" = "counter") =>
      kind === "counter"
        ? new Counter({
            name,
            help,
            registers: r,
            collect(this: Counter) {
              this.reset();
              this.inc(read());
            },
          })
        : new Gauge({
            name,
            help,
            registers: r,
            collect(this: Gauge) {
              this.set(read());
            },
          });
    value("gatehouse_cache_hits_total", "Requests answered from the cache", () => this.cache.hits);
    value("gatehouse_cache_misses_total", "Cacheable requests the origin answered", () => this.cache.misses);
    value(
      "gatehouse_cache_hit_bytes_total",
      "Response bytes served from the cache (not fetched from origins)",
      () => this.cache.hitBytes,
    );
    value("gatehouse_http_response_bytes_total", "Response bytes sent to proxy clients", () => this.cache.bytes);
    value("gatehouse_rules_reloads_total", "Changes to the rules files applied while running", () => this.rules.reloads);
    value(
      "gatehouse_rules_errors",
      "Problems in the rules files now (their last good versions are in force)",
      () => this.rules.errors,
      "gauge",
    );
    value("gatehouse_rules_entries", "Entries in force across every rules file", () => this.rules.entries, "gauge");
    value("gatehouse_rules_files", "Rules files read", () => this.rules.files, "gauge");
    const src = this.source;
    new Gauge({
      name: "gatehouse_cache_entries",
      help: "Responses stored, by tier",
      labelNames: ["tier"],
      registers: r,
      collect(this: Gauge<"tier">) {
        const s = src.cache();
        this.set({ tier: "memory" }, s.entries);
        this.set({ tier: "disk" }, s.diskEntries);
      },
    });
    new Gauge({
      name: "gatehouse_cache_bytes",
      help: "Bytes of responses stored, by tier",
      labelNames: ["tier"],
      registers: r,
      collect(this: Gauge<"tier">) {
        const s = src.cache();
        this.set({ tier: "memory" }, s.bytes);
        this.set({ tier: "disk" }, s.diskBytes);
      },
    });
    new Gauge({
      name: "gatehouse_dns_upstream_up",
      help: "1 when a DNS content server answered lately and its last query did not fail",
      labelNames: ["upstream"],
      registers: r,
      collect(this: Gauge<"upstream">) {
        this.reset();
        for (const u of src.upstreams()) this.set({ upstream: u.server }, u.state === "failing" ? 0 : 1);
      },
    });
    new Gauge({
      name: "gatehouse_front_backend_up",
      help: "1 when a front's backend passes its health checks, 0 when it is taken out",
      labelNames: ["front", "backend"],
      registers: r,
      collect(this: Gauge<"front" | "backend">) {
        this.reset();
        for (const f of src.fronts()) for (const b of f.backends) this.set({ front: f.front, backend: b.backend }, b.up ? 1 : 0);
      },
    });
    this.httpUpstream = new Histogram({
      name: "gatehouse_http_upstream_duration_seconds",
      help: "Requests an origin answered (misses, revalidations): arrival to the last byte sent",
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.dnsUpstream = new Histogram({
      name: "gatehouse_dns_upstream_duration_seconds",
      help: "DNS queries a content server answered: arrival to answer, by server",
      labelNames: ["upstream"],
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
  }

  onAccess(e: AccessEvent): void {
    bump(this.http, `${e.result}\t${e.status}`);
    this.cache.bytes += e.bytes;
    if (HITS.test(e.result)) {
      this.cache.hits++;
      this.cache.hitBytes += e.bytes;
    } else if (MISSES.test(e.result)) this.cache.misses++;
    const d = e.decision;
    if (d?.rule && (d.action === "block" || d.action === "deny"))
      bump(this.blocked, `proxy\t${this.source.rulePath(d.rule.file)}`);
    if (e.hierarchy === "HIER_DIRECT" && e.method !== "CONNECT") this.httpUpstream.observe(e.durationMs / 1000);
  }

  onQuery(e: QueryEvent): void {
    bump(this.dns, `${e.result}\t${TYPE_NAME[e.type] ?? "other"}`);
    if (e.result === "blocked") bump(this.blocked, `dns\t${e.rule ? this.source.rulePath(e.rule.file) : "-"}`);
    if (e.result === "forwarded" && e.upstream) this.dnsUpstream.observe({ upstream: e.upstream }, e.ms / 1000);
  }

  onRules(e: RulesEvent): void {
    if (e.reason === "changed") this.rules.reloads++;
    this.rules.errors = e.errors;
    this.rules.entries = e.entries;
    this.rules.files = e.files;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }
}

function bump(tally: Map<string, number>, key: string): void {
  tally.set(key, (tally.get(key) ?? 0) + 1);
}
