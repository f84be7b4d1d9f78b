import { createServer, Server as HttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { SecureContext, TLSSocket } from "node:tls";
import type { Config } from "../config/schema.js";
import type { Part } from "../lifecycle/part.js";
import { isLoopback, type ListenAddress, normalizeAddress } from "../net/address.js";
import { BoundSet, listenOn, type Route } from "../net/listeners.js";
import type { Activity } from "./activity.js";
import type { ConnectionContext, ListenerKind } from "./exchange.js";

/** What a listener hands each request to; it knows nothing of what happens next. */
export interface HttpHandlers {
  request(req: IncomingMessage, res: ServerResponse, ctx: ConnectionContext): void;
  connect(req: IncomingMessage, socket: Socket, head: Buffer, ctx: ConnectionContext): void;
  /** A protocol upgrade (WebSocket); without a handler the request is refused. */
  upgrade?(req: IncomingMessage, socket: Socket, head: Buffer, ctx: ConnectionContext): void;
  clientError(err: NodeJS.ErrnoException, socket: Socket, ctx: ConnectionContext): void;
}

/** A listener that speaks TLS (a front): its certificate is chosen by the name the client asks for. */
export interface ListenerTls {
  contextFor(servername: string): SecureContext | undefined;
  /** For a client that names no server (an https://203.0.113.5/ URL, old clients): the default front's. */
  defaultContext(): SecureContext | undefined;
  /** A client must finish its handshake within this (Node's own default is 120 s). */
  handshakeTimeoutMs: number;
}

type Limits = Config["proxy"]["limits"];

/**
 * The HTTP listeners of one kind on a list of addresses: accept connections, note who and where
 * (the connection context, built once per connection), and pass each request on. A reload keeps
 * the socket and the open connections of every address that stays (BoundSet).
 */
export class HttpListeners implements Part {
  readonly name: string;
  private readonly set: BoundSet<NetServer, HttpHandlers>;
  private readonly contexts = new WeakMap<Socket, ConnectionContext>();

  constructor(
    private readonly opts: {
      /** Config key, for errors: "proxy.listen". */
      key: string;
      /** For logs: "proxy". */
      label: string;
      kind: ListenerKind;
      listen: readonly ListenAddress[];
      limits: Limits;
      handlers: HttpHandlers;
      activity: Activity;
      /** TLS on these listeners (HTTP/2 and HTTP/1.1 by ALPN), for https fronts. */
      tls?: ListenerTls;
      previous?: HttpListeners;
    },
  ) {
    this.name = opts.key;
    this.set = new BoundSet<NetServer, HttpHandlers>({
      key: opts.key,
      listen: opts.listen,
      route: opts.handlers,
      bind: (addr, route) => this.bind(addr, route),
      retune: (server) => {
        if (server instanceof HttpServer) tune(server, opts.limits);
        else tuneSecure(server as Http2SecureServer, opts.limits);
        if (opts.tls) tlsNow.set(server, opts.tls);
      },
      previous: opts.previous?.set,
    });
  }

  prepare(): Promise<void> {
    return this.set.prepare();
  }

  commit(): void {
    this.set.commit();
  }

  abort(): Promise<void> {
    return this.set.abort();
  }

  dispose(): Promise<void> {
    return this.set.dispose();
  }

  /** Stops accepting at once (SIGTERM); resolves when the last open connection has ended. */
  stopAccepting(): Promise<void> {
    return this.set.stopAccepting();
  }

  get addresses(): AddressInfo[] {
    return this.set.addresses;
  }

  get count(): number {
    return this.set.servers.length;
  }

  private async bind(addr: ListenAddress, route: Route<HttpHandlers>): Promise<NetServer> {
    const tls = this.opts.tls;
    const server = tls
      ? httpsServer(this.opts.limits, route, (socket) => this.ctx(socket), tls)
      : httpServer(this.opts.limits, route, (socket) => this.ctx(socket));
    const activity = this.opts.activity;
    server.on(tls ? "secureConnection" : "connection", (socket: Socket) => this.contexts.set(socket, this.context(socket)));
    if (server instanceof HttpServer) {
      server.on("close", () => activity.servers.delete(server));
      await listenOn(server, addr);
      activity.servers.add(server);
    } else {
      // node:http2 servers cannot close their connections themselves: a stop cuts them one by one.
      server.on("secureConnection", (socket: Socket) => activity.addConnection(socket));
      await listenOn(server, addr);
    }
    return server;
  }

  private ctx(socket: Socket): ConnectionContext {
    return this.contexts.get(socket) ?? this.context(socket);
  }

  private context(socket: Socket): ConnectionContext {
    const address = normalizeAddress(socket.remoteAddress ?? "");
    const sni = (socket as TLSSocket).servername;
    return {
      kind: this.opts.kind,
      listener: this.opts.label,
      client: { address, port: socket.remotePort ?? 0, loopback: isLoopback(address) },
      local: { address: normalizeAddress(socket.localAddress ?? ""), port: socket.localPort ?? 0 },
      scheme: this.opts.tls ? "https" : "http",
      sni: typeof sni === "string" ? sni.toLowerCase() : undefined,
    };
  }
}

/**
 * A node:http server that hands every request of a connection, with that connection's context, to
 * whatever handlers `route` points at now (a reload re-points it).
 */
function httpServer(limits: Limits, route: Route<HttpHandlers>, ctx: (socket: Socket) => ConnectionContext): HttpServer {
  const server = createServer({
    maxHeaderSize: limits.maxHeaderSize,
    // A 1 GB upload may take long; what must not happen is silence, which the body timer catches.
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, limits.headerTimeout),
    // Host is checked by the target stage, with a page that says what is wrong.
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  });
  tune(server, limits);
  server.on("request", (req, res) => route.current.request(req, res, ctx(req.socket)));
  server.on("checkContinue", (req, res) => route.current.request(req, res, ctx(req.socket)));
  server.on("connect", (req, socket, head) => route.current.connect(req, socket as Socket, head, ctx(socket as Socket)));
  server.on("upgrade", (req, socket, head) => upgrade(route.current, req, socket as Socket, head, ctx(socket as Socket)));
  server.on("clientError", (err, socket) =>
    route.current.clientError(err as NodeJS.ErrnoException, socket as Socket, ctx(socket as Socket)),
  );
  return server;
}

/**
 * The same for TLS: HTTP/2 and HTTP/1.1 by ALPN (node:http2 with allowHTTP1), both into the same
 * handlers. Only TLS 1.2 and later, with Node's (OpenSSL's) default modern cipher list.
 */
function httpsServer(
  limits: Limits,
  route: Route<HttpHandlers>,
  ctx: (socket: Socket) => ConnectionContext,
  tls: ListenerTls,
): Http2SecureServer {
  const server: Http2SecureServer = createSecureServer({
    allowHTTP1: true,
    minVersion: "TLSv1.2",
    handshakeTimeout: tls.handshakeTimeoutMs,
    // The TLS settings of the generation in force: a reload that keeps this socket re-points them.
    SNICallback: (name, cb) => {
      const context = (tlsNow.get(server) ?? tls).contextFor(name.toLowerCase());
      if (context) cb(null, context);
      else cb(new Error(`no certificate for ${name}`));
    },
    settings: { maxHeaderListSize: limits.maxHeaderSize },
  });
  tlsNow.set(server, tls);
  // Node reads the certificate for a client without SNI from the server's shared context when the
  // connection arrives, so it is set just before: the default front's pair as it is now (a pair
  // replaced on disk, or a reload, takes effect for the next client). No public API sets a
  // SecureContext object as the default; _sharedCreds is what setSecureContext() assigns.
  server.prependListener("connection", () => {
    const context = (tlsNow.get(server) ?? tls).defaultContext();
    const s = server as unknown as { _sharedCreds: SecureContext };
    if (context && s._sharedCreds !== context) s._sharedCreds = context;
  });
  tuneSecure(server, limits);
  // HTTP/2 requests carry a proxy of the session's socket: the context is the TLS socket's.
  const sock = (req: IncomingMessage | Http2ServerRequest) =>
    (req as Http2ServerRequest).stream?.session?.socket ?? (req.socket as Socket);
  const request = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) =>
    route.current.request(req as IncomingMessage, res as ServerResponse, ctx(sock(req) as Socket));
  server.on("request", request);
  server.on("checkContinue", request);
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) =>
    upgrade(route.current, req, socket, head, ctx(socket)),
  );
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A handshake that failed (no certificate for the name, garbage, a scanner): nothing to answer.
    socket.destroy();
    void err;
  });
  return server;
}

function upgrade(h: HttpHandlers, req: IncomingMessage, socket: Socket, head: Buffer, ctx: ConnectionContext): void {
  if (h.upgrade) return h.upgrade(req, socket, head, ctx);
  socket.end("HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/**
 * An HTTP server that listens nowhere: connections are handed to it, each with its context. The
 * decrypted side of intercepted tunnels comes in here, and goes through the same request path as
 * everything else. One per process; a reload points it at the new handlers.
 */
export class AdoptingServer {
  private readonly server: HttpServer;
  private readonly contexts = new WeakMap<Socket, ConnectionContext>();
  private readonly route: Route<HttpHandlers>;

  constructor(handlers: HttpHandlers, limits: Limits, activity: Activity) {
    this.route = { current: handlers };
    this.server = httpServer(limits, this.route, (socket) => this.contexts.get(socket) as ConnectionContext);
    activity.servers.add(this.server);
  }

  /** Serves HTTP on an already open connection (a TLS socket over a tunnel). */
  adopt(socket: Socket, ctx: ConnectionContext): void {
    this.contexts.set(socket, ctx);
    this.server.emit("connection", socket);
  }

  /** A reload: new requests on every adopted connection go to the new handlers. */
  update(handlers: HttpHandlers, limits: Limits): void {
    this.route.current = handlers;
    tune(this.server, limits);
  }
}

/** The TLS settings each https listener serves with now; a reload that keeps the listener updates them. */
const tlsNow = new WeakMap<NetServer, ListenerTls>();

/**
 * The same limits for HTTP/1.1 over TLS, which node:http2 (allowHTTP1) runs with node:http's
 * connection code and these fields; without them a client sending its headers a byte at a time
 * held the connection for as long as it liked. (tls.handshakeTimeout is fixed when the listener is
 * bound: node offers no setter.)
 */
function tuneSecure(server: Http2SecureServer, limits: Limits): void {
  const h1 = server as unknown as { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
  h1.headersTimeout = limits.headerTimeout;
  h1.requestTimeout = 0;
  h1.connectionsCheckingInterval = Math.min(1000, limits.headerTimeout);
  server.setTimeout(limits.idleTimeout);
}

/** Limits node lets us change on a live server; maxHeaderSize needs a new listener. */
function tune(server: HttpServer, limits: Limits): void {
  server.headersTimeout = limits.headerTimeout;
  server.keepAliveTimeout = limits.idleTimeout;
  server.maxConnections = limits.maxClientConnections;
  // No per-socket inactivity timer on every connection (it costs each read and write a timer
  // refresh): idle keep-alive is keepAliveTimeout, slow headers are headersTimeout, a request body
  // has its own inactivity timer, and a stalled response has sendTimeout.
  server.timeout = 0;
}
