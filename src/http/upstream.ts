import { Agent, errors as undiciErrors } from "undici";
import type { Config } from "../config/schema.js";
import { formatDuration } from "../config/units.js";
import { type LookupFunction, LoopbackRefusedError, refuseLoopback } from "../net/lookup.js";
import type { HttpExchange, HttpResponse } from "./exchange.js";
import { clientResponseHeaders, forwardRequestHeaders } from "./headers.js";
import type { PageText } from "./pages.js";

type UpstreamConfig = Config["proxy"]["upstream"];

/** What went wrong talking to an origin, as a page the client can read. */
export class UpstreamError extends Error {
  constructor(
    readonly page: PageText,
    cause?: unknown,
  ) {
    super(page.message, { cause });
  }
}

/**
 * Fetches from origins through undici's pooled keep-alive connections. Two pools: clients on
 * loopback may reach loopback origins; everyone else goes through a pool whose lookup refuses them,
 * so one client's pooled connection can never be reused to reach a loopback service for another.
 */
export class Upstream {
  private readonly trusted: Agent;
  private readonly guarded: Agent;

  constructor(
    private readonly cfg: UpstreamConfig,
    lookup: LookupFunction,
    private readonly via: string,
    private readonly forwardedFor: boolean,
  ) {
    const options = (l: LookupFunction) => ({
      connections: cfg.maxConnectionsPerOrigin,
      keepAliveTimeout: cfg.keepAliveTimeout,
      keepAliveMaxTimeout: Math.max(cfg.keepAliveTimeout, 60_000),
      headersTimeout: cfg.headersTimeout,
      bodyTimeout: cfg.bodyTimeout,
      maxHeaderSize: 64 * 1024,
      connect: { timeout: cfg.connectTimeout, lookup: l as never },
    });
    this.trusted = new Agent(options(lookup));
    this.guarded = new Agent(options(refuseLoopback(lookup)));
  }

  async fetch(x: HttpExchange, maxForwards?: number): Promise<HttpResponse> {
    const url = x.url;
    const headers = forwardRequestHeaders(x.rawHeaders, x.headers.connection, {
      host: url.host,
      via: `${x.httpVersion} ${this.via}`,
      maxForwards,
      forwardedFor: this.forwardedFor ? x.client.address : undefined,
    });
    const agent = x.client.loopback ? this.trusted : this.guarded;
    if (x.body) x.sendContinue();
    try {
      const res = await agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: x.method,
        headers,
        body: x.body,
        signal: x.signal,
        onInfo: (info: { statusCode: number; headers: Record<string, string | string[] | undefined> }) =>
          x.informational?.(info.statusCode, info.headers),
      } as Parameters<Agent["request"]>[0]);
      x.log.hierarchy = "HIER_DIRECT";
      x.log.peer = url.hostname;
      return {
        kind: "response",
        status: res.statusCode,
        headers: clientResponseHeaders(res.headers, `1.1 ${this.via}`),
        body: res.body,
      };
    } catch (err) {
      throw this.explain(err, url);
    }
  }

  private explain(err: unknown, url: URL): UpstreamError {
    const host = url.host;
    const code = (err as { code?: string }).code ?? "";
    const cause = (err as { cause?: { code?: string } }).cause;
    const inner = cause?.code ?? code;
    if (err instanceof LoopbackRefusedError || cause instanceof LoopbackRefusedError) {
      return new UpstreamError(
        {
          status: 403,
          title: "Destination not allowed",
          message: `${url.hostname} resolves to this appliance's own loopback address, which only local clients may reach.`,
        },
        err,
      );
    }
    if (inner === "ENOTFOUND" || inner === "EAI_AGAIN" || inner === "ENODATA") {
      return new UpstreamError(
        {
          status: 502,
          title: "Name not found",
          message: `The name ${url.hostname} could not be resolved (${inner}).`,
          details: ["Check the spelling of the address, or whether the site still exists."],
        },
        err,
      );
    }
    if (inner === "ECONNREFUSED") {
      return new UpstreamError(
        {
          status: 502,
          title: "Connection refused",
          message: `The server at ${host} refused the connection (ECONNREFUSED).`,
          details: ["The site may be down; try again later."],
        },
        err,
      );
    }
    if (err instanceof undiciErrors.ConnectTimeoutError || code === "UND_ERR_CONNECT_TIMEOUT") {
      return new UpstreamError(
        {
          status: 504,
          title: "Connection timed out",
          message: `The server at ${host} did not accept a connection within ${formatDuration(this.cfg.connectTimeout)}.`,
        },
        err,
      );
    }
    if (err instanceof undiciErrors.HeadersTimeoutError || code === "UND_ERR_HEADERS_TIMEOUT") {
      return new UpstreamError(
        {
          status: 504,
          title: "Gateway timeout",
          message: `The server at ${host} did not answer within ${formatDuration(this.cfg.headersTimeout)}.`,
        },
        err,
      );
    }
    if (inner === "EHOSTUNREACH" || inner === "ENETUNREACH") {
      return new UpstreamError(
        { status: 502, title: "Server unreachable", message: `No route to the server at ${host} (${inner}).` },
        err,
      );
    }
    if (err instanceof undiciErrors.InvalidArgumentError || code === "UND_ERR_INVALID_ARG") {
      return new UpstreamError(
        { status: 400, title: "Bad request", message: `The request cannot be forwarded: ${(err as Error).message}.` },
        err,
      );
    }
    const what =
      inner === "ECONNRESET" || code === "UND_ERR_SOCKET"
        ? "reset the connection"
        : `failed (${inner || (err as Error).message})`;
    return new UpstreamError(
      { status: 502, title: "Bad gateway", message: `The server at ${host} ${what} before sending a complete response.` },
      err,
    );
  }

  async close(): Promise<void> {
    await Promise.all([this.trusted.close(), this.guarded.close()]);
  }

  destroy(): void {
    void this.trusted.destroy();
    void this.guarded.destroy();
  }
}
