import { connect as netConnect, type Socket } from "node:net";
import type { SecureContext } from "node:tls";
import { connect as tlsConnect } from "node:tls";
import { LRUCache } from "lru-cache";
import { Agent, Client, type Dispatcher, request } from "undici";
import type { FrontConfig } from "../../config/fronts-schema.js";
import type { Events } from "../../events/events.js";
import type { HttpCache } from "../../http/cache/http-cache.js";
import type { ConnectionContext, FrontTarget, HttpExchange, HttpOutcome, HttpResponse } from "../../http/exchange.js";
import { type Upstream, UpstreamError } from "../../http/upstream.js";
import type { Logger } from "../../log/logger.js";
import { AddressSet } from "../../net/address.js";
import { proxyHeader } from "../../net/proxy-protocol.js";
import type { Stage } from "../../pipeline/stage.js";
import { Backends } from "../health.js";

/** One backend of a web front: its origin, and whether it wants the PROXY protocol. */
export interface WebBackend {
  label: string;
  url: URL;
  clientAddress: "none" | "proxy-v1" | "proxy-v2";
}

export interface WebFrontDeps {
  upstream: Upstream;
  /** Roots that backends' certificates (https backends) are verified against. */
  trust: SecureContext;
  cache: HttpCache;
  log: Logger;
  events: Events;
}

/** Connections to PROXY-protocol backends carry one client each: at most this many kept around. */
const PER_CLIENT_POOLS = 1024;

/**
 * A web front as the request path sees it (FrontTarget): its backends with their health, the
 * pools that reach them, the forwarding fields, HSTS, and its optional cache stage.
 */
export class WebFront implements FrontTarget {
  readonly name: string;
  readonly redirectToHttps: boolean;
  readonly cache: Stage<HttpExchange, HttpOutcome> | undefined;
  readonly backends: Backends<WebBackend>;
  private readonly pool: Agent;
  /** A PROXY header describes one client connection, so those connections are never shared. */
  private readonly perClient = new LRUCache<ConnectionContext, Client>({
    max: PER_CLIENT_POOLS,
    // Evicted or closed with the front: a close that fails (the backend already gone) is only noted.
    dispose: (c) =>
      c
        .close()
        .catch((err: unknown) =>
          this.deps.log.debug({ front: this.name, err }, "closing a PROXY-protocol backend connection failed"),
        ),
  });
  private readonly trusted: AddressSet;
  private readonly hsts: string | undefined;

  constructor(
    readonly cfg: FrontConfig,
    private readonly deps: WebFrontDeps,
    previous: WebFront | undefined,
  ) {
    this.name = cfg.name;
    this.redirectToHttps = cfg.redirectToHttps;
    // Cache-Status names the front (the cache reads x.front).
    this.cache = cfg.cache ? deps.cache.stage() : undefined;
    this.trusted = new AddressSet(cfg.trustedProxies);
    this.hsts = cfg.protocol === "https" && cfg.tls.hsts > 0 ? `max-age=${Math.floor(cfg.tls.hsts / 1000)}` : undefined;
    const list = (Array.isArray(cfg.backend) ? cfg.backend : [cfg.backend]).map((b): WebBackend => {
      const entry = typeof b === "string" ? { url: b, clientAddress: undefined } : b;
      const url = new URL(entry.url);
      const clientAddress = entry.clientAddress ?? (cfg.clientAddress === "xclient" ? "none" : cfg.clientAddress);
      return { label: url.host, url, clientAddress };
    });
    this.pool = new Agent({ ...deps.upstream.poolOptions(), connect: { secureContext: deps.trust } });
    this.backends = new Backends(cfg.name, list, cfg, (b, ms) => this.check(b, ms), deps.log, deps.events, previous?.backends);
  }

  async fetch(x: HttpExchange, opts: { maxForwards?: number }): Promise<HttpResponse> {
    // A backend that refuses the connection is tried no further; the next healthy one gets the
    // request, once, when nothing of it was sent yet (no body, or an idempotent method).
    const retriable = x.body === null;
    let backend = this.backends.pick();
    for (let attempt = 0; ; attempt++) {
      if (!backend) throw this.allDown();
      try {
        const res = await this.deps.upstream.fetchBackend(
          x,
          {
            origin: backend.url.origin,
            label: `backend ${backend.label}`,
            host: this.backendHost(x),
            front: this.forwarding(x),
            dispatcher: this.dispatcher(backend, x.ctx),
          },
          opts,
        );
        this.backends.succeeded(backend);
        x.log.hierarchy = `FRONT_${this.name}`;
        x.log.peer = backend.label;
        if (this.hsts && !res.headers.some(([n]) => n === "strict-transport-security"))
          res.headers.push(["strict-transport-security", this.hsts]);
        return res;
      } catch (err) {
        x.log.hierarchy = `FRONT_${this.name}`;
        x.log.peer = backend.label;
        // A client that left says nothing about the backend: only the backend's own failures count.
        if (x.abort.aborted) throw err;
        this.backends.failed(backend, err instanceof UpstreamError ? err.page.message : String(err));
        const next = attempt === 0 && retriable && refused(err) ? this.backends.pick() : undefined;
        if (!next || next === backend) throw err;
        backend = next;
      }
    }
  }

  /**
   * Where an http front that redirects sends a request: https:// with the same host, path and
   * query, on the port of the https front of this config that serves the host (none when that is
   * 443, or when no front here serves it: then https is served elsewhere, on its default port).
   */
  httpsLocation(url: URL): string {
    const port = this.httpsPort(url.hostname);
    return `https://${url.hostname}${port && port !== 443 ? `:${port}` : ""}${url.pathname}${url.search}`;
  }

  /** Set by the fronts that share this config: the port of the https front that serves a host. */
  httpsPort: (host: string) => number | undefined = () => undefined;

  /** The Host the backend gets: the client's own, unless the front rewrites it. */
  backendHost(x: HttpExchange): string {
    return this.cfg.hostHeader ?? (typeof x.headers.host === "string" ? x.headers.host : x.url.host);
  }

  /** The forwarding fields' values for a request (X-Forwarded-*, Forwarded). */
  forwarding(x: HttpExchange): { client: string; proto: "http" | "https"; host: string; trusted: boolean } {
    return { client: x.client.address, proto: x.ctx.scheme, host: x.url.host, trusted: this.trusted.has(x.client.address) };
  }

  /** The backend for a WebSocket, connected (TLS for https backends, PROXY header first if wanted). */
  openUpgrade(ctx: ConnectionContext): { backend: WebBackend; socket: Socket } | undefined {
    const backend = this.backends.pick();
    if (!backend) return undefined;
    const port = Number(backend.url.port || (backend.url.protocol === "https:" ? 443 : 80));
    const host = backend.url.hostname.replace(/^\[|\]$/g, "");
    const socket =
      backend.url.protocol === "https:"
        ? tlsConnect({ host, port, servername: host, secureContext: this.deps.trust, ALPNProtocols: ["http/1.1"] })
        : netConnect({ host, port });
    if (backend.clientAddress !== "none") socket.write(proxyHeader(backend.clientAddress, ctx));
    return { backend, socket };
  }

  /** A 503 that says every backend is down and when to come back. */
  allDown(): UpstreamError {
    const names = this.backends.status().map((s) => s.backend);
    return new UpstreamError({
      status: 503,
      title: "Service unavailable",
      message: `Every server behind ${this.name} is down (${names.join(", ")}); try again in a moment.`,
      headers: [["retry-after", String(this.backends.retryAfter)]],
    });
  }

  private dispatcher(b: WebBackend, ctx: ConnectionContext): Dispatcher {
    if (b.clientAddress === "none") return this.pool;
    let client = this.perClient.get(ctx);
    if (!client) {
      client = new Client(b.url.origin, {
        ...this.deps.upstream.poolOptions(),
        connect: proxyConnector(b, ctx, this.deps),
      } as Client.Options);
      this.perClient.set(ctx, client);
    }
    return client;
  }

  /** An active check: GET the health path, expecting one of the configured statuses. */
  private async check(b: WebBackend, timeoutMs: number): Promise<void> {
    const [lo = 200, hi = lo] = this.cfg.health.expect.split("-").map(Number);
    // A PROXY-protocol backend refuses a connection without the header: the check says UNKNOWN.
    const dispatcher =
      b.clientAddress === "none"
        ? this.pool
        : new Client(b.url.origin, { connect: proxyConnector(b, undefined, this.deps) } as Client.Options);
    try {
      const res = await request(new URL(this.cfg.health.path, b.url), {
        dispatcher,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        // The Host real requests reach the backend with: hostHeader when the front rewrites it (a
        // backend that only answers its internal name would fail every check otherwise).
        headers: {
          host: this.cfg.hostHeader ?? this.cfg.hosts[0]?.replace(/^\*\./, "") ?? b.url.host,
          "user-agent": "gatehouse health check",
        },
      });
      await res.body.dump();
      if (res.statusCode < lo || res.statusCode > hi)
        throw new Error(`health check got ${res.statusCode}, expected ${this.cfg.health.expect}`);
    } finally {
      if (dispatcher !== this.pool) await dispatcher.close().catch(() => {});
    }
  }

  start(): void {
    this.backends.start();
  }

  async close(): Promise<void> {
    await this.backends.stop();
    this.perClient.clear();
    await this.pool.close();
  }
}

/** Connections for one client to a PROXY-protocol backend: the header goes first on each. */
function proxyConnector(b: WebBackend, ctx: ConnectionContext | undefined, deps: WebFrontDeps) {
  const port = Number(b.url.port || (b.url.protocol === "https:" ? 443 : 80));
  const host = b.url.hostname.replace(/^\[|\]$/g, "");
  const header = ctx
    ? proxyHeader(b.clientAddress as "proxy-v1" | "proxy-v2", ctx)
    : proxyHeader(b.clientAddress as "proxy-v1" | "proxy-v2", {
        client: { address: "", port: 0 },
        local: { address: "", port: 0 },
      });
  return (_opts: unknown, callback: (err: Error | null, socket: Socket | null) => void) => {
    const raw = netConnect({ host, port });
    raw.once("error", (err) => callback(err, null));
    raw.once("connect", () => {
      raw.write(header);
      if (b.url.protocol !== "https:") return callback(null, raw);
      const secure = tlsConnect({ socket: raw, servername: host, secureContext: deps.trust, ALPNProtocols: ["http/1.1"] });
      secure.once("secureConnect", () => callback(null, secure));
      secure.once("error", (err) => callback(err, null));
    });
  };
}

/** Nothing reached the backend: another one may take the request. */
function refused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string; cause?: { code?: string } } }).cause;
  const code = cause?.code ?? cause?.cause?.code;
  return code === "ECONNREFUSED" || code === "UND_ERR_CONNECT_TIMEOUT" || code === "EHOSTUNREACH";
}
