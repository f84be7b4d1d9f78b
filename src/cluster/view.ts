import type { AddressInfo } from "node:net";
import type { AdminSource, CacheControl, WorkerSummary } from "../admin/state.js";
import type { Gatehouse } from "../app.js";
import type { Config } from "../config/schema.js";
import type { Explanation } from "../explain/explain.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import type { RuleSource } from "../rules/rules.js";
import type { Addresses, Call, WorkerStatus } from "./messages.js";

export interface WorkerInfo {
  addresses: Addresses | undefined;
  status: WorkerStatus | undefined;
  summary: WorkerSummary;
}

export interface ViewDeps<W extends WorkerInfo> {
  /** The config as the admin wrote it (the supervisor's own generation serves only the admin). */
  config(): Config;
  inner(): Gatehouse;
  /** Workers serving now, oldest first. */
  workers(): W[];
  /** Asks every serving worker; one answer each. */
  callAll(call: Call): Promise<unknown[]>;
  /** Resolves once every change seen so far has reached the workers. */
  settled(): Promise<void>;
}

/**
 * The admin's view of a cluster: the config, rules, resolver and dashboard are the supervisor's
 * own; the addresses, cache counters, backend health and TLS state are what the workers last
 * reported (every 100 ms); purges and explain are asked of the workers themselves.
 */
export class ClusterView<W extends WorkerInfo> implements AdminSource {
  constructor(private readonly d: ViewDeps<W>) {}

  live(): W[] {
    return this.d.workers();
  }

  first(): W | undefined {
    return this.d.workers()[0];
  }

  get workers(): WorkerSummary[] {
    return this.d.workers().map((w) => w.summary);
  }

  get config(): Config {
    return this.d.config();
  }

  get rules(): RuleSource {
    const inner = this.d.inner().rules;
    const settled = () => this.d.settled();
    return {
      get current() {
        return inner.current;
      },
      roots: inner.roots,
      values: (kind) => inner.values(kind),
      onChange: (l) => inner.onChange(l),
      subscribers: inner.subscribers,
      summary: () => inner.summary(),
      diagnostics: () => inner.diagnostics(),
      rescan: () => inner.rescan(),
      // An admin's edit is applied when every worker has it, not when the supervisor has read it.
      settle: async () => {
        await inner.settle();
        await settled();
      },
    };
  }

  get resolver() {
    return this.d.inner().resolver;
  }

  get events() {
    return this.d.inner().events;
  }

  /** shared.redis: the supervisor's own link, which adds the counts its dashboard has from every worker. */
  get shared() {
    return this.d.inner().shared;
  }

  get adminAddress(): AddressInfo | undefined {
    return this.d.inner().adminAddress;
  }

  get proxyAddresses(): AddressInfo[] {
    return this.first()?.addresses?.proxy ?? [];
  }

  get dnsAddresses(): { address: string; port: number }[] {
    return this.first()?.addresses?.dns ?? [];
  }

  get frontAddresses(): AddressInfo[] {
    return this.first()?.addresses?.fronts ?? [];
  }

  /** Every worker checks the backends itself; the oldest one's view is shown. */
  get frontHealth(): WorkerStatus["fronts"] {
    return this.first()?.status?.fronts ?? [];
  }

  get tlsStatus(): WorkerStatus["tls"] {
    const all = this.d.workers();
    return {
      ca: all[0]?.status?.tls.ca,
      passThrough: all.flatMap((w) => w.status?.tls.passThrough ?? []),
    };
  }

  get cache(): CacheControl {
    const workers = () => this.d.workers();
    const owner = () => this.d.inner().cache;
    const callAll = (call: Call) => this.d.callAll(call);
    return {
      stats: (): CacheStats => {
        const all = workers().flatMap((w) => (w.status ? [w.status.cache] : []));
        const sum = (k: "entries" | "bytes" | "hits" | "misses") => all.reduce((n, s) => n + s[k], 0);
        const hits = sum("hits");
        const misses = sum("misses");
        // The disk tier is one directory for all: the owner's index counts it.
        const disk = owner().stats();
        return {
          entries: sum("entries"),
          bytes: sum("bytes"),
          diskEntries: disk.diskEntries,
          diskBytes: disk.diskBytes,
          hits,
          misses,
          hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses),
        };
      },
      // Each worker drops its memory tier's copies and the files; the owner drops them from its index.
      purge: async (url) => {
        const counts = (await callAll({ op: "purge", url })) as number[];
        return Math.max(owner().purge(url), ...counts);
      },
      purgePrefix: async (prefix) => {
        const results = (await callAll({ op: "purgePrefix", prefix })) as { urls: number; purged: number }[];
        const mine = owner().purgePrefix(prefix);
        return {
          urls: Math.max(mine.urls, ...results.map((r) => r.urls)),
          purged: Math.max(mine.purged, ...results.map((r) => r.purged)),
        };
      },
    };
  }

  async explain(target: string, client: string | undefined): Promise<Explanation> {
    const [first] = (await this.d.callAll({ op: "explain", target, client })) as Explanation[];
    if (!first) return this.d.inner().explain(target, client);
    return first;
  }
}
