import type { AddressInfo } from "node:net";
import { isDeepStrictEqual } from "node:util";
import { AdminServer } from "./admin/server.js";
import { DiagnosticsError } from "./config/diagnostic.js";
import { type LoadedConfig, loadConfig } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { DNS_FILE_KINDS } from "./dns/local.js";
import { resolverLookup } from "./dns/lookup.js";
import { QueryLog } from "./dns/query-log.js";
import { DnsResolver } from "./dns/resolver.js";
import { DnsServer } from "./dns/server.js";
import { HttpCache } from "./http/cache/http-cache.js";
import { buildHttpPipeline } from "./http/pipeline.js";
import { makePage, type ProxyRuntime, ProxyServer } from "./http/proxy-server.js";
import { policyStage } from "./http/stages/policy.js";
import { Upstream } from "./http/upstream.js";
import { AccessLog } from "./log/access-log.js";
import { createLogger, type Logger } from "./log/logger.js";
import { type ListenAddress, parseListen } from "./net/address.js";
import { type LookupFunction, refuseLoopback } from "./net/lookup.js";
import { Rules } from "./rules/rules.js";

export interface StartOptions {
  /** -c FILE; undefined means ./gatehouse.yaml if present, else the embedded defaults. */
  configFile?: string;
  /** A config already validated (tests); skips the file. */
  config?: Config;
  log?: Logger;
  accessLog?: AccessLog;
  queryLog?: QueryLog;
  /** Resolver used for origin connections; the DNS part supplies its own pipeline here. */
  lookup?: LookupFunction;
}

interface Running {
  config: Config;
  cache: HttpCache;
  rules: Rules;
  resolver: DnsResolver;
  dns: DnsServer | undefined;
  upstream: Upstream;
  proxy: ProxyServer;
  proxyAddresses: AddressInfo[];
  runtime: ProxyRuntime;
}

/**
 * The whole process: builds every part from one config, swaps in a new one on reload (keeping the
 * old one if the new one fails), and stops gracefully.
 */
export class Gatehouse {
  private current!: Running;
  private readonly log: Logger;
  private readonly accessLog: AccessLog;
  private readonly queryLog: QueryLog;
  private admin: AdminServer | undefined;
  adminAddress: AddressInfo | undefined;

  private constructor(
    private readonly opts: StartOptions,
    private loaded: LoadedConfig,
  ) {
    this.log = opts.log ?? createLogger(loaded.config.log.level);
    this.accessLog = opts.accessLog ?? AccessLog.open(loaded.config.log.access.file, loaded.config.log.access.format);
    this.queryLog = opts.queryLog ?? QueryLog.open(loaded.config.log.queries.file);
  }

  static async start(opts: StartOptions = {}): Promise<Gatehouse> {
    const loaded = opts.config ? { config: opts.config, file: undefined } : loadConfig(opts.configFile);
    const app = new Gatehouse(opts, loaded);
    app.current = await app.build(loaded.config, undefined);
    await app.startAdmin();
    app.log.info(
      {
        config: loaded.file ?? "(embedded defaults)",
        proxy: app.current.proxyAddresses.map(fmtAddress),
        dns: app.dnsAddresses.map((a) => fmtAddress({ ...a, family: a.address.includes(":") ? "IPv6" : "IPv4" })),
      },
      "gatehouse started",
    );
    return app;
  }

  private async startAdmin(): Promise<void> {
    const text = this.current.config.admin.listen;
    if (text === "") return;
    const addr = parseListen(text) as ListenAddress;
    this.admin = new AdminServer({
      cache: () => this.current.cache,
      password: () => this.current.config.admin.password,
      log: this.log,
    });
    try {
      this.adminAddress = await this.admin.listen(addr);
    } catch (err) {
      // The proxy and DNS matter more than the admin API: keep serving, and say why it is missing.
      this.log.error({ listen: text, err: (err as Error).message }, "admin API not started");
      this.admin = undefined;
    }
  }

  get config(): Config {
    return this.current.config;
  }

  get cache(): HttpCache {
    return this.current.cache;
  }

  get rules(): Rules {
    return this.current.rules;
  }

  get dnsAddresses(): { address: string; port: number }[] {
    return this.current.dns?.addresses ?? [];
  }

  get resolver(): DnsResolver {
    return this.current.resolver;
  }

  get proxyAddresses(): AddressInfo[] {
    return this.current.proxyAddresses;
  }

  private async build(config: Config, previous: Running | undefined): Promise<Running> {
    const cfg = config.proxy;
    const rules = this.rulesFor(config, previous);
    const keepCache =
      previous && isDeepStrictEqual(previous.config.dns.cache, config.dns.cache) ? previous.resolver.cache : undefined;
    const resolver = new DnsResolver(config.dns, rules, this.log, this.queryLog, keepCache);
    const lookup = this.opts.lookup ?? resolverLookup(() => this.current?.resolver ?? resolver);
    const upstream = new Upstream(cfg.upstream, lookup, cfg.name, cfg.forwardedFor);
    const guarded = refuseLoopback(lookup);
    const cache =
      previous && isDeepStrictEqual(previous.config.proxy.cache, cfg.cache) ? previous.cache : new HttpCache(cfg.cache, this.log);
    const runtime: ProxyRuntime = {
      cfg,
      handle: buildHttpPipeline({
        cfg,
        upstream,
        policy: [policyStage(() => rules.current, makePage(cfg))],
        cache: cache.stage(),
      }),
      lookup: (client) => (client.loopback ? lookup : guarded),
      accessLog: this.accessLog,
      log: this.log,
    };
    const proxy = previous?.proxy ?? new ProxyServer(() => this.current?.runtime ?? runtime);
    let proxyAddresses: AddressInfo[];
    try {
      const listen = cfg.listen.map((text) => parseListen(text) as ListenAddress);
      proxyAddresses = await proxy.apply(listen, cfg.limits);
    } catch (err) {
      void upstream.close();
      throw err;
    }
    if (previous && previous.config.proxy.limits.maxHeaderSize !== cfg.limits.maxHeaderSize) {
      this.log.warn("proxy.limits.maxHeaderSize applies to listeners bound from now on; restart to apply it everywhere");
    }
    let dns = previous?.dns;
    if (
      !previous ||
      !isDeepStrictEqual(previous.config.dns.listen, config.dns.listen) ||
      previous.config.dns.tcpIdleTimeout !== config.dns.tcpIdleTimeout
    ) {
      dns = undefined;
      if (config.dns.listen.length > 0) {
        dns = new DnsServer(() => this.current?.resolver ?? resolver, this.log, config.dns.tcpIdleTimeout);
        try {
          await dns.listen(config.dns.listen.map((t) => parseListen(t) as ListenAddress));
        } catch (err) {
          await dns.close();
          void upstream.close();
          throw new Error(`dns.listen: ${(err as Error).message}`);
        }
      }
    }
    return { config, cache, rules, resolver, dns, upstream, proxy, proxyAddresses, runtime };
  }

  /** The same rules keep watching across a reload unless their directories changed. */
  private rulesFor(config: Config, previous: Running | undefined): Rules {
    const old = previous?.rules;
    if (
      old &&
      previous.config.rules === config.rules &&
      previous.config.listsDir === config.listsDir &&
      isDeepStrictEqual(previous.config.lists, config.lists)
    ) {
      old.rescan();
      return old;
    }
    const rules = new Rules(config, this.log, DNS_FILE_KINDS);
    rules.start();
    return rules;
  }

  /** SIGHUP: build the new state from the config file; if anything fails, the old one keeps running. */
  async reload(): Promise<boolean> {
    let loaded: LoadedConfig;
    try {
      loaded = this.opts.config ? this.loaded : loadConfig(this.opts.configFile);
    } catch (err) {
      this.reportReloadFailure(err);
      return false;
    }
    const old = this.current;
    let next: Running;
    try {
      next = await this.build(loaded.config, old);
    } catch (err) {
      this.reportReloadFailure(err);
      return false;
    }
    this.loaded = loaded;
    this.current = next;
    if (old.rules !== next.rules) old.rules.close();
    if (old.dns && old.dns !== next.dns) void old.dns.close();
    // In-flight requests hold their own reference to the old pool; close() lets them finish.
    void old.upstream.close();
    this.log.info({ config: loaded.file ?? "(embedded defaults)" }, "configuration reloaded");
    return true;
  }

  private reportReloadFailure(err: unknown): void {
    const text = err instanceof DiagnosticsError ? err.message : String((err as Error).message ?? err);
    this.log.error({ problems: text.split("\n") }, "reload failed; the previous configuration stays in force");
  }

  /** SIGTERM: stop accepting, let open requests finish within shutdownGrace, then close the rest. */
  async stop(): Promise<void> {
    const { proxy, upstream, config, rules, dns } = this.current;
    await this.admin?.close();
    rules.close();
    await dns?.close();
    await proxy.stopAccepting();
    const drained = await proxy.drain(config.shutdownGrace);
    if (!drained) this.log.warn({ open: proxy.activeCount }, "closing requests still open after shutdownGrace");
    proxy.destroyAll();
    upstream.destroy();
    this.accessLog.close();
    this.queryLog.close();
    this.log.info("gatehouse stopped");
  }
}

export function fmtAddress(a: AddressInfo): string {
  return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
