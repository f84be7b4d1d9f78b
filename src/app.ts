import type { AddressInfo, Socket } from "node:net";
import { isDeepStrictEqual } from "node:util";
import { addressFacing, pacRoutes, wpadNames } from "./admin/pac.js";
import { AdminListener } from "./admin/server.js";
import type { AdminSource } from "./admin/state.js";
import { AdminState } from "./admin/state.js";
import type { MirroredRules } from "./cluster/rules-mirror.js";
import { DiagnosticsError } from "./config/diagnostic.js";
import { type LoadedConfig, loadConfig } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { DNS_FILE_KINDS } from "./dns/local.js";
import { resolverLookup } from "./dns/lookup.js";
import { QueryLog } from "./dns/query-log.js";
import { DnsResolver } from "./dns/resolver.js";
import { DnsServer } from "./dns/server.js";
import { TYPE } from "./dns/wire.js";
import { Events, type RulesEvent } from "./events/events.js";
import { type Explanation, explain } from "./explain/explain.js";
import { Fronts } from "./fronts/index.js";
import { Activity } from "./http/activity.js";
import { Bumper, Refusals } from "./http/bump.js";
import { HttpCache } from "./http/cache/http-cache.js";
import { type ChainParts, decisionChain, forwardChain, forwardStages, interceptChain } from "./http/chains.js";
import type { Client, ConnectionContext } from "./http/exchange.js";
import { AdoptingServer, HttpListeners } from "./http/listener.js";
import { pageMaker } from "./http/pages.js";
import { HttpService } from "./http/service.js";
import { Upstream } from "./http/upstream.js";
import { commitAll, disposeAll, type Part, prepareAll } from "./lifecycle/part.js";
import { Reusable } from "./lifecycle/reusable.js";
import { within } from "./lifecycle/within.js";
import { AccessLog } from "./log/access-log.js";
import { createLogger, type Logger, silentLogger } from "./log/logger.js";
import { AddressSet, type ListenAddress, parseListen } from "./net/address.js";
import { type LookupFunction, refuseLoopback } from "./net/lookup.js";
import { SelfEndpoints } from "./net/self.js";
import { type RuleSource, Rules } from "./rules/rules.js";
import { Shared } from "./shared/shared.js";
import type { CaSummary } from "./tls/ca.js";
import { caRoutes } from "./tls/ca-pages.js";
import { InterceptPolicy, PassThrough } from "./tls/intercept-policy.js";
import { TlsPart } from "./tls/tls-part.js";

export interface StartOptions {
  /** -c FILE; undefined means ./gatehouse.yaml if present, else the embedded defaults. */
  configFile?: string;
  /** A config already validated (tests); skips the file. */
  config?: Config;
  log?: Logger;
  /** Fixed log sinks (tests); otherwise the files in log.access / log.queries, reopened on reload. */
  accessLog?: AccessLog;
  queryLog?: QueryLog;
  /** Resolver used for origin connections; the DNS part supplies its own pipeline here. */
  lookup?: LookupFunction;
  /** How this process takes part in a cluster of processes (src/cluster); undefined: it does everything alone. */
  role?: ProcessRole;
  /** Fields on every program log line of this process (a worker's number). */
  logFields?: Record<string, unknown>;
}

/**
 * A worker serves the proxy, DNS and fronts with the rules the supervisor hands it (and no admin);
 * the supervisor serves only the admin, over what its workers report, and owns the rules files.
 */
export type ProcessRole =
  | { kind: "worker"; rules: MirroredRules }
  /** `admin` is given this process's Gatehouse as soon as it exists (the admin starts inside start()). */
  | { kind: "supervisor"; admin: (self: Gatehouse) => AdminSource };

/** A reload prepared beside the running generation, to be committed or aborted (see prepareReload). */
export interface PreparedReload {
  readonly loaded: LoadedConfig;
  readonly gen: Generation;
}

/** Everything built from one config. A reload builds the next one beside it and swaps. */
interface Generation {
  config: Config;
  tls: TlsPart;
  fronts: Fronts;
  /** The request path of decrypted tunnels, which the process-wide intercept server is pointed at. */
  intercepted: HttpService;
  rules: Reusable<RuleSource>;
  cache: Reusable<HttpCache>;
  /** shared.redis: one connection per process, kept while the URL stays. */
  shared: Reusable<Shared>;
  accessLog: Reusable<Sink> | undefined;
  queryLog: Reusable<Sink> | undefined;
  resolver: DnsResolver;
  dns: DnsServer;
  upstream: UpstreamPart;
  proxy: HttpListeners;
  admin: AdminListener;
  /** The dashboard's counters, logins and history: kept across reloads while admin.state stays. */
  dashboard: Reusable<AdminState>;
  /** The forward chain's deciding stages, for explain. */
  explainForward: ReturnType<typeof decisionChain>;
  /** In prepare order; committed in the same order, disposed together. */
  parts: Part[];
}

interface Sink {
  key: string;
  unsubscribe: (() => void) | undefined;
  reopen(): void;
  close(): void;
}

/**
 * The whole process: builds every part from one config, swaps in a new generation on reload (the
 * old one keeps running if any part of the new one fails to prepare), and stops gracefully.
 */
export class Gatehouse {
  private current!: Generation;
  private readonly log: Logger;
  readonly events: Events;
  private readonly activity = new Activity();
  private readonly self = new SelfEndpoints();
  /** Decrypted tunnels outlive a reload: one server for them per process, re-pointed on commit. */
  private intercepted: AdoptingServer | undefined;
  private readonly refusals: Refusals;
  private passThrough: { ms: number; memory: PassThrough } | undefined;
  private reloads: Promise<boolean> = Promise.resolve(true);
  private stopping = false;

  private constructor(
    private readonly opts: StartOptions,
    private loaded: LoadedConfig,
  ) {
    this.log = opts.log ?? createLogger(loaded.config.log.level, opts.logFields);
    this.events = new Events((channel, err) => this.log.error({ channel, err }, `a ${channel} event sink failed`));
    this.refusals = new Refusals(loaded.config.proxy.limits, this.activity);
    if (opts.accessLog) {
      const fixed = opts.accessLog;
      this.events.access.subscribe((e) => fixed.write(e));
      this.events.session.subscribe((e) => fixed.writeSession(e));
    }
    if (opts.queryLog) {
      const fixed = opts.queryLog;
      this.events.query.subscribe((e) => fixed.writeEvent(e));
    }
  }

  static async start(opts: StartOptions = {}): Promise<Gatehouse> {
    const loaded = opts.config ? { config: opts.config, file: opts.configFile } : loadConfig(opts.configFile);
    const app = new Gatehouse(opts, loaded);
    const gen = app.build(loaded.config, undefined);
    await prepareAll(gen.parts);
    commitAll(gen.parts);
    app.current = gen;
    app.afterCommit();
    // A supervisor says so itself, with its workers' addresses.
    if (opts.role?.kind !== "supervisor")
      app.log.info(
        {
          config: loaded.file ?? "(embedded defaults)",
          ...app.listenerSummary(),
          rules: app.rulesSummary(),
        },
        opts.role?.kind === "worker" ? "worker started" : "gatehouse started",
      );
    return app;
  }

  get config(): Config {
    return this.current.config;
  }

  get cache(): HttpCache {
    return this.current.cache.value;
  }

  get rules(): RuleSource {
    return this.current.rules.value;
  }

  get resolver(): DnsResolver {
    return this.current.resolver;
  }

  /** What several boxes share through Redis (shared.redis); the dashboard shows its boxes and totals. */
  get shared(): Shared {
    return this.current.shared.value;
  }

  get proxyAddresses(): AddressInfo[] {
    return this.current.proxy.addresses;
  }

  get dnsAddresses(): { address: string; port: number }[] {
    return this.current.dns.addresses;
  }

  get frontAddresses(): AddressInfo[] {
    return this.current.fronts.addresses;
  }

  /** Each front's backends and whether they are up (dashboard, metrics, tests). */
  get frontHealth() {
    return this.current.fronts.health();
  }

  /** The office CA and the clients passing through undecrypted after refusing it (dashboard). */
  get tlsStatus(): { ca: CaSummary | undefined; passThrough: { client: string; host: string; since: number }[] } {
    return { ca: this.current.tls.ca?.summary(), passThrough: this.passThrough?.memory.list() ?? [] };
  }

  get adminAddress(): AddressInfo | undefined {
    return this.current.admin.address;
  }

  /** For tests and the admin API: what is open now. */
  get counts(): { proxyListeners: number; dnsListeners: number; ruleSubscribers: number } {
    return {
      proxyListeners: this.current.proxy.count,
      dnsListeners: this.current.dns.addresses.length,
      ruleSubscribers: this.current.rules.value.subscribers,
    };
  }

  private build(config: Config, previous: Generation | undefined): Generation {
    const cfg = config.proxy;
    const role = this.opts.role;
    const adminSource: AdminSource = role?.kind === "supervisor" ? role.admin(this) : this;
    const rules: Reusable<RuleSource> =
      role?.kind === "worker"
        ? // The supervisor owns the files and hands every change to all workers: one mirror per process.
          new Reusable<RuleSource>(
            "rules",
            previous?.rules,
            () => true,
            () => role.rules,
            { close: () => {} },
          )
        : new Reusable<Rules>(
            "rules",
            previous?.rules as Reusable<Rules> | undefined,
            () =>
              previous !== undefined &&
              previous.config.rules === config.rules &&
              previous.config.listsDir === config.listsDir &&
              isDeepStrictEqual(previous.config.lists, config.lists),
            () => new Rules(config, this.log, DNS_FILE_KINDS),
            {
              prepare: async (r) => r.load(),
              start: (r) => {
                r.onChange(() => this.events.rules.emit(rulesEvent(r, "changed")));
                this.events.rules.emit(rulesEvent(r, "loaded"));
                r.start();
              },
              kept: (r) => r.rescan(),
              close: (r) => r.close(),
            },
          );
    const cache = new Reusable<HttpCache>(
      "proxy.cache",
      previous?.cache,
      () => previous !== undefined && isDeepStrictEqual(previous.config.proxy.cache, cfg.cache),
      // The shared tier of the generation in force: a cache kept across a reload follows shared.redis.
      () => new HttpCache(cfg.cache, this.log, undefined, () => this.current?.shared.value.http),
      { prepare: (c) => c.open(), close: (c) => c.close() },
    );
    // A supervisor writes no access or query log: its workers append their own lines to the files.
    const ownLogs = role?.kind !== "supervisor";
    const accessLog =
      this.opts.accessLog || !ownLogs
        ? undefined
        : this.sink("log.access", previous?.accessLog, `${config.log.access.file}\n${config.log.access.format}`, () => {
            const log = AccessLog.open(config.log.access.file, config.log.access.format);
            // No file, no subscriber: the request path then builds no access events at all.
            if (config.log.access.file === "") return { unsubscribe: undefined, reopen: () => {}, close: () => log.close() };
            // Front sessions (FTP, mail) share the access log with HTTP requests, as Squid's one log does.
            const offRequests = this.events.access.subscribe((e) => log.write(e));
            const offSessions = this.events.session.subscribe((e) => log.writeSession(e));
            const unsubscribe = () => {
              offRequests();
              offSessions();
            };
            return { unsubscribe, reopen: () => log.reopen(), close: () => log.close() };
          });
    const queryLog =
      this.opts.queryLog || !ownLogs
        ? undefined
        : this.sink("log.queries", previous?.queryLog, config.log.queries.file, () => {
            const log = QueryLog.open(config.log.queries.file);
            const unsubscribe =
              config.log.queries.file === "" ? undefined : this.events.query.subscribe((e) => log.writeEvent(e));
            return { unsubscribe, reopen: () => log.reopen(), close: () => log.close() };
          });
    const dashboard = new Reusable<AdminState>(
      "admin.state",
      previous?.dashboard,
      (s) => s.dir === config.admin.state && s.counting === (config.admin.listen !== ""),
      () => new AdminState(adminSource, config.admin.state, config.admin.listen !== "", config.admin.recentLog, this.log),
      { prepare: (s) => s.open(), start: (s) => s.start(), close: (s) => s.close() },
    );
    const shared = new Reusable<Shared>(
      "shared.redis",
      previous?.shared,
      (s) => s.url === config.shared.redis,
      // The counts of the dashboard in force (this one's until the first start is committed; none
      // while admin.listen is ""), added up over the boxes.
      () =>
        new Shared(config.shared.redis, this.log, () => {
          const d = (this.current?.dashboard ?? dashboard).value;
          return d.counting ? d.stats : undefined;
        }),
      { prepare: (s) => s.open(), start: (s) => s.start(), close: (s) => s.close() },
    );
    const resolver = new DnsResolver({
      cfg: config.dns,
      wpad: { names: wpadNames(cfg.pac), address: addressFacing },
      rules: rules.value,
      log: this.log,
      events: this.events,
      previous: previous?.resolver,
      shared: shared.value.dns,
    });
    const dns = new DnsServer({
      listen: config.dns.listen,
      // Read per query: a retained socket answers with the resolver in force.
      resolver: () => this.current.resolver,
      log: this.log,
      tcpIdleTimeout: config.dns.tcpIdleTimeout,
      previous: previous?.dns,
    });
    const lookup = this.opts.lookup ?? resolverLookup(() => resolver);
    const tls = new TlsPart(config, this.log, previous?.tls);
    const upstream = new UpstreamPart(new Upstream(cfg.upstream, lookup, cfg.name, cfg.forwardedFor, tls.trust.context));
    const officeClients = new AddressSet(cfg.clients);
    const parts: ChainParts = {
      cfg,
      rules: () => rules.value.current,
      page: pageMaker({
        proxyName: cfg.name,
        contact: cfg.contact,
        ruleRoots: rules.value.roots,
        insider: (address) => officeClients.has(address),
      }),
      self: this.self,
      cache: cache.value.stage(),
      routes: [...caRoutes(() => tls.ca, cfg.name), ...pacRoutes(cfg)],
      localTls: () => tls.ca !== undefined,
    };
    const guarded = refuseLoopback(lookup);
    const passThrough = this.passThroughFor(cfg.passThrough);
    let bumper: Bumper | undefined;
    const deps = {
      page: parts.page,
      limits: cfg.limits,
      tunnel: {
        lookup: (client: Client) => (client.loopback ? lookup : guarded),
        connectTimeoutMs: cfg.upstream.connectTimeout,
        idleMs: cfg.limits.tunnelIdleTimeout,
        self: this.self,
      },
      // Made once the CA is loaded (prepare); undefined without one: tunnels are relayed as they are.
      bumper: () =>
        tls.minter &&
        (bumper ??= new Bumper({
          minter: tls.minter,
          policy: new InterceptPolicy(
            { domains: cfg.intercept, clients: cfg.interceptClients, ports: cfg.interceptPorts },
            () => rules.value.current,
            passThrough,
          ),
          passThrough,
          intercepted: this.interceptedConnections,
          refusals: this.refusals,
          handshakeTimeoutMs: config.tls.handshakeTimeout,
          passThroughMs: cfg.passThrough,
          log: this.log,
        })),
      events: this.events,
      log: this.log,
      activity: this.activity,
    };
    const service = new HttpService({ ...deps, chain: forwardChain(parts, upstream.upstream) });
    const intercepted = new HttpService({ ...deps, chain: interceptChain(parts, upstream.upstream) });
    const fronts = new Fronts(
      config.fronts,
      {
        cfg,
        chain: parts,
        upstream: upstream.upstream,
        trust: tls.trust.context,
        cache: cache.value,
        certs: () => tls.store,
        rules: () => rules.value.current,
        log: this.log,
        events: this.events,
        activity: this.activity,
        handshakeTimeoutMs: config.tls.handshakeTimeout,
      },
      previous?.fronts,
    );
    const proxy = new HttpListeners({
      key: "proxy.listen",
      label: "proxy",
      kind: "forward",
      listen: cfg.listen.map((t) => parseListen(t) as ListenAddress),
      limits: cfg.limits,
      handlers: service,
      activity: this.activity,
      previous: previous?.proxy,
    });
    const admin = new AdminListener(
      config.admin.listen === "" ? undefined : (parseListen(config.admin.listen) as ListenAddress),
      {
        source: adminSource,
        state: dashboard.value,
        certificate: config.admin.tls ? (name) => tls.store.contextFor(name) : undefined,
        log: this.log,
      },
      previous?.admin,
    );
    if (previous && previous.config.proxy.limits.maxHeaderSize !== cfg.limits.maxHeaderSize) {
      this.log.warn("proxy.limits.maxHeaderSize applies to listeners bound from now on; restart to apply it everywhere");
    }
    return {
      config,
      tls,
      fronts,
      intercepted,
      rules,
      cache,
      shared,
      accessLog,
      queryLog,
      resolver,
      dns,
      upstream,
      proxy,
      admin,
      dashboard,
      explainForward: decisionChain(forwardStages(parts)),
      parts: [
        ...(accessLog ? [accessLog] : []),
        ...(queryLog ? [queryLog] : []),
        // Before rules: it starts listening for rule events when committed, and rules announce
        // their first load when they are.
        dashboard,
        rules,
        cache,
        shared,
        tls,
        resolver,
        dns,
        upstream,
        proxy,
        fronts,
        admin,
      ],
    };
  }

  private sink(name: string, previous: Reusable<Sink> | undefined, key: string, open: () => Omit<Sink, "key">): Reusable<Sink> {
    return new Reusable<Sink>(
      name,
      previous,
      (s) => s.key === key,
      () => ({ key, unsubscribe: undefined, reopen: () => {}, close: () => {} }),
      {
        // Opened in prepare, so a log file that cannot be created fails the reload, not the process.
        prepare: async (s) => {
          const opened = open();
          s.unsubscribe = opened.unsubscribe;
          s.reopen = opened.reopen;
          s.close = opened.close;
        },
        close: (s) => {
          s.unsubscribe?.();
          s.close();
        },
      },
    );
  }

  /** What `gatehouse explain` asks through the admin API: the generation in force decides. */
  explain(target: string, client: string | undefined): Promise<Explanation> {
    return Gatehouse.explainWith(this.current, target, client);
  }

  /**
   * `gatehouse explain` when nothing runs: the same generation built from the files (rules
   * compiled, nothing bound, nothing forwarded), asked the same way, then released.
   */
  static async explainFromFiles(config: Config, target: string, client: string | undefined): Promise<Explanation> {
    const app = new Gatehouse({ config, log: silentLogger() }, { config, file: undefined });
    const gen = app.build(config, undefined);
    app.current = gen;
    try {
      await gen.rules.prepare();
      await gen.resolver.prepare();
      return await Gatehouse.explainWith(gen, target, client);
    } finally {
      await gen.resolver.abort();
      await gen.rules.abort();
    }
  }

  private static explainWith(gen: Generation, target: string, client: string | undefined): Promise<Explanation> {
    return explain(
      {
        forward: gen.explainForward,
        dns: (name, c) => gen.resolver.explain(name, TYPE.A, c),
        rules: gen.rules.value.current,
        problems: gen.rules.value.diagnostics().length,
      },
      target,
      client,
    );
  }

  /** Clients that refused the CA pass through for proxy.passThrough; the memory survives reloads. */
  private passThroughFor(ms: number): PassThrough {
    if (this.passThrough?.ms !== ms) this.passThrough = { ms, memory: new PassThrough(ms) };
    return this.passThrough.memory;
  }

  /** Decrypted tunnels go to the one intercept server, whichever generation decrypted them. */
  private readonly interceptedConnections = {
    adopt: (socket: Socket, ctx: ConnectionContext) => this.intercepted?.adopt(socket, ctx),
  };

  private afterCommit(): void {
    const gen = this.current;
    if (this.intercepted) this.intercepted.update(gen.intercepted, gen.config.proxy.limits);
    else this.intercepted = new AdoptingServer(gen.intercepted, gen.config.proxy.limits, this.activity);
    if (!this.opts.log) this.log.level = gen.config.log.level;
    this.self.set([...gen.proxy.addresses, ...gen.dns.addresses, ...(gen.admin.address ? [gen.admin.address] : [])]);
  }

  private listenerSummary(): Record<string, string[] | string> {
    const gen = this.current;
    return {
      proxy: gen.proxy.addresses.map(fmtAddress),
      fronts: gen.fronts.addresses.map(fmtAddress),
      dns: gen.dns.addresses.map((a) => fmtAddress({ ...a, family: a.address.includes(":") ? "IPv6" : "IPv4" })),
      admin: gen.admin.address ? fmtAddress(gen.admin.address) : "off",
    };
  }

  private rulesSummary(): Record<string, number | undefined> {
    return Object.fromEntries(this.current.rules.value.summary().map((f) => [f.file, f.entries]));
  }

  /** SIGUSR1 (logrotate's postrotate): the access and query logs continue in new files at their paths. */
  reopenLogs(): void {
    this.current.accessLog?.value.reopen();
    this.current.queryLog?.value.reopen();
    // A worker's supervisor says it once for all of them.
    if (this.opts.role?.kind === "worker") this.log.debug("log files reopened");
    else this.log.info("log files reopened");
  }

  /**
   * SIGHUP: build the next generation from the config file beside the running one; only if every
   * part prepared is it committed and the old one disposed. Reloads run one at a time.
   */
  reload(): Promise<boolean> {
    this.reloads = this.reloads.then(() => this.reloadNow());
    return this.reloads;
  }

  private async reloadNow(): Promise<boolean> {
    if (this.stopping) return false;
    let loaded: LoadedConfig;
    try {
      loaded = this.opts.config ? this.loaded : loadConfig(this.opts.configFile);
    } catch (err) {
      this.reportReloadFailure(err);
      return false;
    }
    const next = await this.prepareReload(loaded);
    if (!next) return false;
    await this.commitReload(next);
    return true;
  }

  /**
   * The first half of a reload: the next generation built and prepared beside the running one.
   * Undefined (and the failure logged) when it cannot be. A worker's supervisor commits it only
   * once every worker has prepared its own.
   */
  async prepareReload(loaded: LoadedConfig): Promise<PreparedReload | undefined> {
    if (this.stopping) return undefined;
    const gen = this.build(loaded.config, this.current);
    try {
      await prepareAll(gen.parts);
    } catch (err) {
      this.reportReloadFailure(err);
      return undefined;
    }
    return { loaded, gen };
  }

  async commitReload(next: PreparedReload): Promise<void> {
    const old = this.current;
    commitAll(next.gen.parts);
    this.loaded = next.loaded;
    this.current = next.gen;
    this.afterCommit();
    await disposeAll(old.parts, (part, err) =>
      this.log.warn({ part, err: (err as Error).message }, `${part}: not closed cleanly`),
    );
    this.log.info(
      { config: next.loaded.file ?? "(embedded defaults)", ...this.listenerSummary(), rules: this.rulesSummary() },
      "configuration reloaded",
    );
  }

  async abortReload(next: PreparedReload): Promise<void> {
    await Promise.allSettled(next.gen.parts.map((p) => p.abort()));
  }

  private reportReloadFailure(err: unknown): void {
    const problems =
      err instanceof DiagnosticsError
        ? err.message.split("\n")
        : err instanceof AggregateError
          ? err.errors.map((e: Error) => e.message)
          : [String((err as Error).message ?? err)];
    this.log.error({ problems }, "reload failed; the previous configuration stays in force");
  }

  /**
   * SIGTERM: stop accepting at once; let requests and tunnels in progress finish within
   * shutdownGrace (counted from the signal); then close whatever is left, with one warning.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = Date.now() + this.current.config.shutdownGrace;
    await this.reloads;
    const gen = this.current;
    const report = (part: string, err: unknown) =>
      this.log.warn({ part, err: (err as Error).message }, `${part}: not closed cleanly`);
    // Every listener refuses new connections now: the admin closes outright, DNS answers the
    // queries it has read, the proxy stops accepting and lets what is in progress finish within the grace.
    const early: Part[] = [gen.admin];
    const closing = disposeAll(early, report);
    const dnsDrained = gen.dns.drain();
    // Connections accepted a moment ago have not sent their request yet: they are waited for too,
    // not reset by the exit (a worker replaced under load showed it).
    const listenersClosed = Promise.all([gen.proxy.stopAccepting(), gen.fronts.stopAccepting()]);
    const drained = await this.activity.idle(Math.max(0, deadline - Date.now()));
    await within(Promise.all([dnsDrained, listenersClosed]), deadline - Date.now());
    if (!drained) {
      const cut = this.activity.destroyAll();
      this.log.warn({ open: cut }, `closed ${cut} request(s) and tunnel(s) still open after shutdownGrace`);
    }
    await closing;
    await disposeAll(
      gen.parts.filter((p) => !early.includes(p)),
      report,
    );
    this.activity.destroyAll();
    gen.upstream.upstream.destroy();
    this.log.info("gatehouse stopped");
  }
}

function rulesEvent(r: RuleSource, reason: RulesEvent["reason"]): RulesEvent {
  const files = r.summary();
  return {
    time: Date.now(),
    reason,
    files: files.length,
    entries: files.reduce((n, f) => n + (f.entries ?? 0), 0),
    errors: files.reduce((n, f) => n + f.errors, 0),
  };
}

export function fmtAddress(a: AddressInfo): string {
  return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** The origin connection pools of one generation; a retired pool lets its requests finish. */
class UpstreamPart implements Part {
  readonly name = "proxy.upstream";

  constructor(readonly upstream: Upstream) {}

  async prepare(): Promise<void> {}

  commit(): void {}

  async abort(): Promise<void> {
    this.upstream.destroy();
  }

  async dispose(): Promise<void> {
    // close() lets requests in progress finish and then closes the pooled connections; waiting
    // for it would hold a reload hostage to the slowest download.
    this.upstream.close().catch(() => {});
  }
}
