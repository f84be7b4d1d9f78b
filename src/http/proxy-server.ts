import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Config } from "../config/schema.js";
import type { AccessLog } from "../log/access-log.js";
import type { Logger } from "../log/logger.js";
import { isLoopback, type ListenAddress, normalizeAddress } from "../net/address.js";
import { isLoopbackHost, type LookupFunction } from "../net/lookup.js";
import type { Handler } from "../pipeline/stage.js";
import { PushBody } from "./body.js";
import { Abort, type Client, flattenHeaders, type HttpExchange, type HttpOutcome, type HttpResponse } from "./exchange.js";
import { type PageText, proxyPage } from "./pages.js";
import { openTunnel } from "./tunnel.js";
import { UpstreamError } from "./upstream.js";

/** What the listener needs from the current config; swapped whole on reload. */
export interface ProxyRuntime {
  cfg: Config["proxy"];
  handle: Handler<HttpExchange, HttpOutcome>;
  lookup: (client: Client) => LookupFunction;
  accessLog: AccessLog;
  log: Logger;
}

let counter = 0;
const idPrefix = Date.now().toString(36);
const nextId = () => `${idPrefix}-${(++counter).toString(36)}`;

export function makePage(cfg: Config["proxy"]) {
  return (x: Pick<HttpExchange, "id" | "headers">, page: PageText): HttpResponse =>
    proxyPage({ id: x.id, accept: x.headers.accept, proxyName: cfg.name, contact: cfg.contact }, page);
}

/**
 * The forward proxy's listener: turns the wire into an HttpExchange, runs the current pipeline, and
 * writes the outcome back. It knows nothing of rules or caching; those are stages.
 */
export class ProxyServer {
  private servers: Server[] = [];
  private readonly tunnels = new Set<Socket>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly runtime: () => ProxyRuntime) {}

  /**
   * Makes the listeners match `listen`: an address already bound (as written, or as actually bound
   * after port 0) keeps its socket and open connections; new ones are bound; dropped ones stop
   * accepting. Binds everything new before closing anything, so a failure leaves the old set intact.
   */
  async apply(listen: readonly ListenAddress[], limits: Config["proxy"]["limits"]): Promise<AddressInfo[]> {
    const keep = new Map<Server, ListenAddress>();
    const created: Server[] = [];
    const order: Server[] = [];
    try {
      for (const addr of listen) {
        const existing = this.servers.find((s) => !keep.has(s) && sameAddress(s, addr));
        if (existing) {
          keep.set(existing, addr);
          order.push(existing);
          continue;
        }
        const server = await this.bind(addr, limits);
        created.push(server);
        order.push(server);
      }
    } catch (err) {
      for (const s of created) s.close();
      throw err;
    }
    for (const s of this.servers) {
      if (keep.has(s)) continue;
      s.close();
      s.closeIdleConnections();
    }
    for (const s of keep.keys()) tune(s, limits);
    this.servers = order;
    return order.map((s) => s.address() as AddressInfo);
  }

  private async bind(addr: ListenAddress, limits: Config["proxy"]["limits"]): Promise<Server> {
    const server = createServer({
      maxHeaderSize: limits.maxHeaderSize,
      // A 1 GB upload may take long; what must not happen is silence, which the socket timeout catches.
      requestTimeout: 0,
      connectionsCheckingInterval: Math.min(1000, limits.headerTimeout),
      requireHostHeader: false,
      joinDuplicateHeaders: false,
    });
    tune(server, limits);
    server.on("request", (req, res) => this.onRequest(req, res));
    server.on("checkContinue", (req, res) => this.onRequest(req, res));
    server.on("connect", (req, socket, head) => this.onConnect(req, socket as Socket, head));
    server.on("clientError", (err, socket) => this.onClientError(err as NodeJS.ErrnoException, socket as Socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server;
  }

  private begin(): void {
    this.active++;
  }

  private end(): void {
    this.active--;
    if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const rt = this.runtime();
    const started = Date.now();
    const t0 = performance.now();
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    const address = normalizeAddress(socket.remoteAddress ?? "");
    const client: Client = { address, port: socket.remotePort ?? 0, loopback: isLoopback(address) };
    const target = req.url ?? "/";
    const method = req.method ?? "GET";
    const abort = new Abort();
    const x = {
      id: nextId(),
      client,
      method,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      httpVersion: req.httpVersion,
      connect: false,
      decisions: [],
      log: { cache: "TCP_MISS", hierarchy: "HIER_NONE", peer: "-", contentType: undefined },
      abort,
      sendContinue: () => {
        if (req.headers.expect !== undefined && !res.headersSent) res.writeContinue();
      },
      informational: (status: number, headers: Record<string, string | string[] | undefined>) => {
        if (status === 103) res.writeEarlyHints(headers as Record<string, string | string[]>);
        else if (status === 102) res.writeProcessing();
      },
    } as unknown as Mutable<HttpExchange>;
    const page = makePage(rt.cfg);

    this.begin();
    res.once("close", () => {
      if (!res.writableFinished) abort.fire();
      this.end();
      rt.accessLog.write({
        start: started,
        durationMs: performance.now() - t0,
        client: address,
        result: x.log.cache,
        status: res.statusCode,
        bytes: socket.bytesWritten - bytesBefore,
        method,
        url: target,
        hierarchy: x.log.hierarchy,
        peer: x.log.peer,
        contentType: x.log.contentType,
        id: x.id,
        decision: x.decisions[x.decisions.length - 1],
        user: x.identity?.user,
      });
    });

    const reject = (p: PageText, closeAfter = false) => {
      x.log.cache = "NONE_NONE";
      if (closeAfter) res.shouldKeepAlive = false;
      rt.log.info({ id: x.id, client: address, method, target: target.slice(0, 200), status: p.status }, p.message);
      req.resume();
      this.write(req, res, page(x, p), x);
    };

    const te = req.headers["transfer-encoding"];
    if (te !== undefined && (req.httpVersion === "1.0" || te.trim().toLowerCase() !== "chunked")) {
      // Only plain chunked framing is unambiguous; anything else is how smuggling starts (RFC 9112 §6.1).
      return reject(
        {
          status: req.httpVersion === "1.0" ? 400 : 501,
          title: "Unsupported transfer coding",
          message: `Transfer-Encoding "${te.slice(0, 100)}" is not accepted; send the body with Content-Length or plain chunked coding.`,
        },
        true,
      );
    }
    if (target.length > rt.cfg.limits.maxUrlLength) {
      return reject({
        status: 414,
        title: "Address too long",
        message: `The requested address is ${target.length} bytes long; this proxy accepts up to ${rt.cfg.limits.maxUrlLength}.`,
      });
    }
    if (target.startsWith("/") || target === "*") {
      // Origin-form: someone opened the proxy's own address in a browser.
      x.log.cache = "NONE_NONE";
      req.resume();
      return this.write(req, res, infoPage(x, rt.cfg), x);
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return reject({
        status: 400,
        title: "Bad request",
        message: "The request target is not a valid absolute URL.",
        details: ["Configure the browser to use this address as its HTTP proxy."],
      });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return reject({
        status: 400,
        title: "Unsupported scheme",
        message: `This proxy fetches http:// and https:// addresses; ${url.protocol}// is not supported.`,
      });
    }
    if (url.username || url.password) {
      return reject({
        status: 400,
        title: "Bad request",
        message: "Addresses with a user name or password in them are not forwarded.",
      });
    }
    x.url = url;
    x.host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    x.port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    if (x.port === socket.localPort && (x.host === normalizeAddress(socket.localAddress ?? "") || isLoopbackHost(x.host))) {
      // An absolute URL naming this very listener: answer, rather than forward to ourselves.
      x.log.cache = "NONE_NONE";
      req.resume();
      return this.write(req, res, infoPage(x, rt.cfg), x);
    }
    if (hasBody(req)) {
      x.body = req;
      req.setTimeout(Math.max(rt.cfg.limits.idleTimeout, 60_000), () => req.destroy(new Error("request body stalled")));
      req.once("end", () => socket.setTimeout(0));
    } else x.body = null;

    rt.handle(x).then(
      (outcome) => {
        if (outcome.kind !== "response") throw new Error(`a ${outcome.kind} outcome for a plain request`);
        if (!x.body) req.resume();
        this.write(req, res, outcome, x);
      },
      (err: unknown) => {
        if (abort.aborted) return;
        if (err instanceof UpstreamError) {
          x.log.hierarchy = "HIER_DIRECT";
          x.log.peer = x.host;
          rt.log.warn({ id: x.id, client: address, url: target, status: err.page.status }, err.message);
          req.resume();
          this.write(req, res, page(x, err.page), x);
          return;
        }
        rt.log.error({ id: x.id, client: address, url: target, err }, "request failed inside the proxy");
        req.resume();
        this.write(
          req,
          res,
          page(x, {
            status: 500,
            title: "Internal error",
            message: "The proxy failed while handling this request; the error is in its log.",
          }),
          x,
        );
      },
    );
  }

  private write(req: IncomingMessage, res: ServerResponse, out: HttpResponse, x: HttpExchange): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const flat = out.flat ?? flattenHeaders(out.headers);
    x.log.contentType = contentTypeOf(flat);
    try {
      res.writeHead(out.status, out.statusText, flat);
    } catch (err) {
      // An origin header node will not send (bad characters): the client gets a clear 502, not a crash.
      this.runtime().log.warn({ id: x.id, err }, "origin sent a response header that cannot be relayed");
      const p = makePage(this.runtime().cfg)(x, {
        status: 502,
        title: "Bad gateway",
        message: `The server at ${x.url.host} sent a malformed response header.`,
      });
      if (out.body instanceof PushBody) out.body.abort(new Error("unrelayable response header"));
      return this.write(req, res, p, x);
    }
    const body = out.body;
    if (body === null || Buffer.isBuffer(body)) {
      res.end(body ?? undefined);
      return;
    }
    const onDrain = () => body.resume();
    res.on("drain", onDrain);
    body.attach({
      data: (chunk) => res.write(chunk),
      end: () => {
        res.off("drain", onDrain);
        res.end();
      },
      // The origin died mid-body: close the client connection so the body never looks complete.
      error: () => res.destroy(),
    });
  }

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const rt = this.runtime();
    const started = Date.now();
    const t0 = performance.now();
    const address = normalizeAddress(socket.remoteAddress ?? "");
    const client: Client = { address, port: socket.remotePort ?? 0, loopback: isLoopback(address) };
    const target = req.url ?? "";
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/?#@[\]]+)):(\d{1,5})$/.exec(target);
    const abort = new Abort();
    const x = {
      id: nextId(),
      client,
      method: "CONNECT",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      httpVersion: req.httpVersion,
      connect: true,
      body: null,
      decisions: [],
      log: { cache: "TCP_TUNNEL", hierarchy: "HIER_NONE", peer: "-" },
      abort,
      sendContinue: () => {},
    } as unknown as Mutable<HttpExchange>;
    const bytesBefore = socket.bytesWritten;
    let status = 200;
    let logged = false;
    const logLine = (bytes: number) => {
      if (logged) return;
      logged = true;
      rt.accessLog.write({
        start: started,
        durationMs: performance.now() - t0,
        client: address,
        result: x.log.cache,
        status,
        bytes,
        method: "CONNECT",
        url: target,
        hierarchy: x.log.hierarchy,
        peer: x.log.peer,
        id: x.id,
        decision: x.decisions[x.decisions.length - 1],
      });
    };
    const respond = (out: HttpResponse) => {
      status = out.status;
      const lines = [`HTTP/1.1 ${out.status} ${statusText(out.status)}`];
      for (const [name, value] of out.headers) lines.push(`${name}: ${Array.isArray(value) ? value.join(", ") : value}`);
      lines.push("connection: close", "", "");
      socket.end(Buffer.concat([Buffer.from(lines.join("\r\n")), Buffer.isBuffer(out.body) ? out.body : Buffer.alloc(0)]));
      logLine(socket.bytesWritten - bytesBefore);
    };
    const page = makePage(rt.cfg);
    socket.on("error", () => socket.destroy());
    if (!m) {
      x.log.cache = "NONE_NONE";
      rt.log.info({ id: x.id, client: address, target: target.slice(0, 200) }, "bad CONNECT target");
      return respond(page(x, { status: 400, title: "Bad request", message: "CONNECT needs a target of the form host:port." }));
    }
    const host = (m[1] ?? m[2] ?? "").toLowerCase();
    const port = Number(m[3]);
    x.host = host;
    x.port = port;
    x.url = new URL(`https://${m[1] ? `[${host}]` : host}:${port}/`);

    this.begin();
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      this.end();
    };
    socket.once("close", () => {
      abort.fire();
      done();
    });
    rt.handle(x).then(
      (outcome) => {
        if (socket.destroyed) return done();
        if (outcome.kind === "response") {
          respond(outcome);
          return done();
        }
        x.log.hierarchy = "HIER_DIRECT";
        x.log.peer = outcome.host;
        const upstream = openTunnel({
          client: socket,
          head,
          host: outcome.host,
          port: outcome.port,
          lookup: rt.lookup(client),
          connectTimeoutMs: rt.cfg.upstream.connectTimeout,
          idleMs: rt.cfg.limits.tunnelIdleTimeout,
          onEstablished: () => socket.write("HTTP/1.1 200 Connection Established\r\n\r\n"),
          onFailure: (f) => {
            rt.log.warn({ id: x.id, client: address, target }, f.reason);
            x.log.cache = "NONE_NONE";
            respond(
              page(x, {
                status: f.status,
                title: f.status === 504 ? "Connection timed out" : "Connection failed",
                message: `Could not open a tunnel: ${f.reason}.`,
              }),
            );
            done();
          },
          onClose: (r) => {
            this.tunnels.delete(upstream);
            logLine(r.bytesToClient);
            done();
          },
        });
        this.tunnels.add(upstream);
      },
      (err: unknown) => {
        rt.log.error({ id: x.id, client: address, target, err }, "CONNECT failed inside the proxy");
        respond(page(x, { status: 500, title: "Internal error", message: "The proxy failed while handling this request." }));
        done();
      },
    );
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const address = normalizeAddress(socket.remoteAddress ?? "");
    const rt = this.runtime();
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "request header section too large"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "ERR_HTTP_HEADERS_TIMEOUT"
          ? [408, "request headers not received in time"]
          : [400, `malformed request (${err.code ?? "parse error"}: ${err.message})`];
    rt.log.info({ client: address, code: err.code }, `refused a request from ${address}: ${reason}`);
    rt.accessLog.write({
      start: Date.now(),
      durationMs: 0,
      client: address,
      result: "NONE_NONE",
      status,
      bytes: 0,
      method: "-",
      url: "error:invalid-request",
      hierarchy: "HIER_NONE",
      peer: "-",
      id: nextId(),
    });
    const body = `${status} ${statusText(status)}: ${reason}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  /** Stops accepting; open requests and tunnels go on. */
  stopAccepting(): Promise<void> {
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const s of this.servers) s.closeIdleConnections();
    return Promise.all(closing).then(() => undefined);
  }

  /** Resolves when no request is open, or after `ms`. */
  async drain(ms: number): Promise<boolean> {
    if (this.active === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((r) => this.idleWaiters.push(() => r(true)));
    const late = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const result = await Promise.race([idle, late]);
    clearTimeout(timer);
    return result;
  }

  destroyAll(): void {
    for (const s of this.servers) s.closeAllConnections();
    for (const t of this.tunnels) t.destroy();
  }

  get activeCount(): number {
    return this.active;
  }
}

/** Limits that node lets us change on a live server; maxHeaderSize needs a new listener. */
function tune(server: Server, limits: Config["proxy"]["limits"]): void {
  server.headersTimeout = limits.headerTimeout;
  server.keepAliveTimeout = limits.idleTimeout;
  server.maxConnections = limits.maxClientConnections;
  // No per-socket inactivity timer on every connection (it costs each read and write a timer
  // refresh): idle keep-alive is keepAliveTimeout, slow headers are headersTimeout, and a request
  // with a body gets its own inactivity timer while it uploads.
  server.timeout = 0;
}

function sameAddress(server: Server, addr: ListenAddress): boolean {
  const bound = server.address() as AddressInfo | null;
  if (!bound || bound.port !== addr.port) return false;
  const host = addr.host ?? "";
  return host === "" ? bound.address === "::" || bound.address === "0.0.0.0" : bound.address === host;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function hasBody(req: IncomingMessage): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const cl = req.headers["content-length"];
  return cl !== undefined && cl !== "0";
}

function contentTypeOf(flat: readonly string[]): string | undefined {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === "content-type") return flat[i + 1];
  return undefined;
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? "Error";
}

function infoPage(x: HttpExchange, cfg: Config["proxy"]): HttpResponse {
  return proxyPage(
    { id: x.id, accept: x.headers.accept, proxyName: cfg.name, contact: cfg.contact },
    {
      status: 200,
      title: `${cfg.name}: the office web proxy`,
      message: `This address is the office's web proxy (${cfg.name}). It is not a web site: set it as the HTTP and HTTPS proxy in your browser or system settings, and pages will load through it.`,
      details: [`Proxy: ${x.headers.host ?? "this address"}`],
    },
  );
}
