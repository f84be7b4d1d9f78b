import { hostname } from "node:os";
import type { Stats } from "../admin/stats/stats.js";
import type { Logger } from "../log/logger.js";
import { SharedCounters, type SharedOverview } from "./counters.js";
import { SharedDns } from "./dns.js";
import { SharedHttp } from "./http.js";
import { SharedRedis, type SharedRedisOptions } from "./redis.js";

let instances = 0;

/**
 * shared.redis: what several boxes share through one Redis/Valkey (upstream DNS answers, small
 * HTTP responses, the dashboard's counters), over one connection with one circuit breaker. Made
 * for every config (its value is kept across reloads while shared.redis stays); without a URL it
 * connects nowhere and `dns`/`http` are undefined, so the caches do exactly what they did alone.
 */
export class Shared {
  readonly redis: SharedRedis;
  readonly dns: SharedDns | undefined;
  readonly http: SharedHttp | undefined;
  readonly counters: SharedCounters;

  constructor(url: string | undefined, log: Logger, stats: () => Stats | undefined, opts: SharedRedisOptions = {}) {
    this.redis = new SharedRedis(url, log, opts);
    this.dns = this.redis.enabled ? new SharedDns(this.redis) : undefined;
    this.http = this.redis.enabled ? new SharedHttp(this.redis) : undefined;
    // Two gatehouses in one process (tests) are two boxes.
    const n = ++instances;
    const box = `${hostname()}:${process.pid}${n > 1 ? `#${n}` : ""}`;
    this.counters = new SharedCounters(this.redis, stats, box);
  }

  get url(): string | undefined {
    return this.redis.url;
  }

  get enabled(): boolean {
    return this.redis.enabled;
  }

  /** Connects, or starts alone when Redis is not there: never fails a start or a reload. */
  open(): Promise<void> {
    return this.redis.open();
  }

  start(): void {
    this.counters.start();
  }

  async close(): Promise<void> {
    this.counters.close();
    await this.redis.close();
  }

  /** The shared section of the dashboard's overview; undefined without shared.redis. */
  overview(): Promise<SharedOverview> | undefined {
    return this.enabled ? this.counters.overview() : undefined;
  }
}
