import { renameSync, writeFileSync } from "node:fs";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Config } from "../config/schema.js";
import type { DnsResolver } from "../dns/resolver.js";
import type { Events } from "../events/events.js";
import type { Explanation } from "../explain/explain.js";
import type { BackendStatus } from "../fronts/health.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import { publicRulePath } from "../http/pages.js";
import { Tasks } from "../lifecycle/tasks.js";
import type { Logger } from "../log/logger.js";
import type { RemoteLists } from "../rules/remote.js";
import type { RuleSource } from "../rules/rules.js";
import type { SharedOverview } from "../shared/counters.js";
import type { CaSummary } from "../tls/ca.js";
import { LoginLimiter } from "./auth/limiter.js";
import { Sessions, token } from "./auth/sessions.js";
import { Live } from "./live.js";
import { Metrics } from "./metrics.js";
import { FIELDS } from "./stats/series.js";
import { Stats, type StatsSnapshot } from "./stats/stats.js";

/** The cache as the admin sees it: one process's, or every worker's through their supervisor. */
export interface CacheControl {
  stats(): CacheStats;
  purge(url: string): number | Promise<number>;
  purgePrefix(prefix: string): { urls: number; purged: number } | Promise<{ urls: number; purged: number }>;
}

export interface WorkerSummary {
  id: number;
  pid: number;
  /** Epoch ms when it began serving. */
  since: number;
}

/** What the admin reads from the running gatehouse: the generation in force, so a reload shows at once. */
export interface AdminSource {
  readonly config: Config;
  readonly cache: CacheControl;
  readonly rules: RuleSource;
  readonly resolver: DnsResolver;
  readonly proxyAddresses: AddressInfo[];
  readonly dnsAddresses: { address: string; port: number }[];
  readonly adminAddress: AddressInfo | undefined;
  readonly frontAddresses: AddressInfo[];
  readonly events: Events;
  /** Each front's backends and whether they are up. */
  readonly frontHealth: { front: string; backends: BackendStatus[] }[];
  /** The office CA (undefined without one) and the client+site pairs passing through undecrypted. */
  readonly tlsStatus: { ca: CaSummary | undefined; passThrough: { client: string; host: string; since: number }[] };
  explain(target: string, client: string | undefined): Promise<Explanation>;
  /** The worker processes serving traffic, when a supervisor runs them (`workers` above 1). */
  readonly workers?: WorkerSummary[];
  /** Several boxes sharing through Redis (shared.redis): undefined from overview() when not configured. */
  readonly shared?: { overview(): Promise<SharedOverview> | undefined };
}

const HISTORY_FILE = "history.json";
export const TOKEN_FILE = "cli-token";
/** A history file bigger than this is not from us (ours stays well under 2 MiB): it is ignored. */
const MAX_HISTORY_BYTES = 8 * 1024 * 1024;
const SAVE_EVERY_MS = 60_000;

/**
 * The admin's state for the whole life of the process, kept across reloads while admin.state
 * stays: the counters and lists the dashboard shows (fed by events), the metrics, the logins, the
 * CLI's token, and the live streams. Its history is read from admin.state when it opens and
 * written back every minute and when it closes.
 */
export class AdminState {
  readonly stats: Stats;
  readonly metrics: Metrics;
  readonly sessions = new Sessions();
  readonly limiter: LoginLimiter;
  readonly live: Live;
  /** For the CLI on this machine: read from admin.state by whoever may read that directory. */
  readonly token = token();
  readonly startedAt = Date.now();
  private readonly tasks: Tasks;
  private unsubscribe: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private savedAt = 0;
  private started = false;
  private writes: Promise<unknown> = Promise.resolve();
  /** Remote list downloads started from the dashboard, stopped if the admin closes first. */
  readonly refreshes = new Set<RemoteLists>();
  /** What the last download started from the dashboard said, per list URL. */
  readonly listStatus = new Map<string, string>();

  constructor(
    private readonly src: AdminSource,
    /** admin.state when this state was made; "" keeps nothing on disk. */
    readonly dir: string,
    /** False with admin.listen "": nobody could look, so no event is counted (about 1 µs each). */
    readonly counting: boolean,
    recentBytes: number,
    private readonly log: Logger,
  ) {
    this.tasks = new Tasks(log, "admin");
    this.stats = new Stats({
      recentBytes,
      rulePath: (file) => publicRulePath(file, src.rules.roots),
      upstreamsFor: (name) => src.resolver.forwarder.serversFor(name).map((s) => s.label),
    });
    this.metrics = new Metrics({
      cache: () => src.cache.stats(),
      upstreams: () => this.stats.upstreamHealth(configuredUpstreams(src)),
      fronts: () => src.frontHealth,
      rulePath: (file) => publicRulePath(file, src.rules.roots),
    });
    this.limiter = new LoginLimiter(() => src.config.admin.loginAttempts);
    this.live = new Live(this.stats, () => this.overview());
  }

  /** Reads the previous run's history, before anything is served. */
  async open(): Promise<void> {
    if (this.dir === "" || !this.counting) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.load();
  }

  private async load(): Promise<void> {
    const file = join(this.dir, HISTORY_FILE);
    try {
      if ((await stat(file)).size > MAX_HISTORY_BYTES) throw new Error(`larger than ${MAX_HISTORY_BYTES} bytes`);
      const snapshot = JSON.parse(await readFile(file, "utf8")) as Partial<StatsSnapshot>;
      if (snapshot.version === 1) this.stats.absorb(snapshot);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      this.log.warn(
        { file, err: (err as Error).message },
        `${file}: cannot read the dashboard history (${(err as Error).message}); the charts start empty and the file is rewritten`,
      );
    }
  }

  /** Runs edits of rules files one after the other, so two clicks never lose one another's line. */
  serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work, work);
    this.writes = run.catch(() => {});
    return run;
  }

  /** Starts counting events and the one-second tick that feeds live pages and saves the history. */
  start(): void {
    this.started = true;
    if (!this.counting) return;
    const { events } = this.src;
    this.unsubscribe = [
      events.access.subscribe((e) => {
        this.stats.onAccess(e);
        this.metrics.onAccess(e);
      }),
      events.session.subscribe((e) => this.stats.onSession(e)),
      events.query.subscribe((e) => {
        this.stats.onQuery(e);
        this.metrics.onQuery(e);
      }),
      events.rules.subscribe((e) => this.metrics.onRules(e)),
    ];
    this.savedAt = Date.now();
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
    this.leaveToken();
  }

  /**
   * The CLI's token, written once this gatehouse is committed to serving (a second one that fails
   * to start must not replace the token of the one that runs). Small and synchronous: commit is.
   */
  private leaveToken(): void {
    if (this.dir === "") return;
    const file = join(this.dir, TOKEN_FILE);
    try {
      writeFileSync(`${file}.${process.pid}.tmp`, `${this.token}\n`, { mode: 0o600 });
      renameSync(`${file}.${process.pid}.tmp`, file);
    } catch (err) {
      this.log.warn(
        { file, err: (err as Error).message },
        `cannot write ${file}; gatehouse status and the CLI cannot reach the admin`,
      );
    }
  }

  private tick(): void {
    this.stats.recent.resize(this.src.config.admin.recentLog);
    this.live.tick();
    if (this.dir !== "" && Date.now() - this.savedAt >= SAVE_EVERY_MS) {
      this.savedAt = Date.now();
      this.tasks.run("save the dashboard history", () => this.save());
    }
  }

  private async save(): Promise<void> {
    if (this.dir === "") return;
    const file = join(this.dir, HISTORY_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(this.stats.snapshot()));
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** What the dashboard shows, as one JSON-ready object (also each live tick). */
  overview(): Overview {
    const s = this.stats;
    const now = s.now();
    // The last ten seconds, the one in progress included: a burst shows at once.
    const recent = s.seconds.sum(now, 10);
    const day = s.minutes.sum(now, 1440);
    const hour = s.minutes.sum(now, 60);
    const minute = s.minutes.sum(now, 1);
    const rules = this.src.rules.summary();
    const lookups = day.hits + day.misses;
    const all = day.requests + day.queries;
    return {
      time: now,
      rates: {
        requestsPerSecond: recent.requests / 10,
        queriesPerSecond: recent.queries / 10,
      },
      hour,
      day,
      hitRatio: lookups === 0 ? 0 : day.hits / lookups,
      blockedShare: all === 0 ? 0 : (day.blockedRequests + day.blockedQueries) / all,
      minute: [now - (now % 60_000), ...FIELDS.map((f) => minute[f])],
      top: {
        sites: s.top("sites", 10),
        domains: s.top("domains", 10),
        blocked: s.top("blocked", 10),
        clients: s.top("clients", 10),
      },
      upstreams: s.upstreamHealth(configuredUpstreams(this.src)),
      fronts: this.src.frontHealth,
      tls: this.src.tlsStatus,
      cache: this.src.cache.stats(),
      rules: {
        files: rules.length,
        entries: rules.reduce((n, f) => n + (f.entries ?? 0), 0),
        errors: rules.reduce((n, f) => n + f.errors, 0),
      },
    };
  }

  async close(): Promise<void> {
    // Never started (a start or reload that failed): nothing of ours to save or remove.
    if (!this.started) return;
    this.started = false;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    clearInterval(this.timer);
    this.live.close();
    await Promise.all([...this.refreshes].map((r) => r.stop()));
    await this.tasks.settle();
    // Not counting: the history on disk is still the last one counted, and stays as it is.
    if (this.dir === "" || !this.counting) return;
    await this.save().catch((err: Error) =>
      this.log.warn({ err: err.message }, `cannot save the dashboard history in ${this.dir}: ${err.message}`),
    );
    const file = join(this.dir, TOKEN_FILE);
    // Only our own token: another gatehouse may have taken the directory over since.
    if ((await readFile(file, "utf8").catch(() => "")).trim() === this.token) await unlink(file).catch(() => {});
  }
}

export interface Overview {
  time: number;
  rates: { requestsPerSecond: number; queriesPerSecond: number };
  hour: ReturnType<Stats["minutes"]["sum"]>;
  day: ReturnType<Stats["minutes"]["sum"]>;
  hitRatio: number;
  blockedShare: number;
  /** The minute in progress as a history row: [start, ...counts in FIELDS order]. */
  minute: number[];
  top: Record<"sites" | "domains" | "blocked" | "clients", ReturnType<Stats["top"]>>;
  upstreams: ReturnType<Stats["upstreamHealth"]>;
  fronts: AdminSource["frontHealth"];
  tls: AdminSource["tlsStatus"];
  cache: CacheStats;
  rules: { files: number; entries: number; errors: number };
}

/** The content servers in config order: the defaults, then those of dns.forward. */
export function configuredUpstreams(src: AdminSource): string[] {
  const f = src.resolver.forwarder;
  return [
    ...new Set([
      ...f.serversFor("").map((s) => s.label),
      ...Object.keys(src.config.dns.forward).flatMap((d) => f.serversFor(d).map((s) => s.label)),
    ]),
  ];
}
