import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
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
  clientError(err: NodeJS.ErrnoException, socket: Socket, ctx: ConnectionContext): void;
}

type Limits = Config["proxy"]["limits"];

/**
 * The HTTP listeners of one kind on a list of addresses: accept connections, note who and where
 * (the connection context, built once per connection), and pass each request on. A reload keeps
 * the socket and the open connections of every address that stays (BoundSet).
 */
export class HttpListeners implements Part {
  readonly name: string;
  private readonly set: BoundSet<Server, HttpHandlers>;
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
      previous?: HttpListeners;
    },
  ) {
    this.name = opts.key;
    this.set = new BoundSet<Server, HttpHandlers>({
      key: opts.key,
      listen: opts.listen,
      route: opts.handlers,
      bind: (addr, route) => this.bind(addr, route),
      retune: (server) => tune(server, opts.limits),
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

  /** Stops accepting at once without waiting for open connections (SIGTERM). */
  stopAccepting(): void {
    this.set.stopAccepting();
  }

  get addresses(): AddressInfo[] {
    return this.set.addresses;
  }

  get count(): number {
    return this.set.servers.length;
  }

  private async bind(addr: ListenAddress, route: Route<HttpHandlers>): Promise<Server> {
    const server = httpServer(this.opts.limits, route, (socket) => this.ctx(socket));
    const activity = this.opts.activity;
    server.on("connection", (socket: Socket) => this.contexts.set(socket, this.context(socket)));
    server.on("close", () => activity.servers.delete(server));
    await listenOn(server, addr);
    activity.servers.add(server);
    return server;
  }

  private ctx(socket: Socket): ConnectionContext {
    return this.contexts.get(socket) ?? this.context(socket);
  }

  private context(socket: Socket): ConnectionContext {
    const address = normalizeAddress(socket.remoteAddress ?? "");
    return {
      kind: this.opts.kind,
      listener: this.opts.label,
      client: { address, port: socket.remotePort ?? 0, loopback: isLoopback(address) },
      local: { address: normalizeAddress(socket.localAddress ?? ""), port: socket.localPort ?? 0 },
      scheme: "http",
    };
  }
}

/**
 * A node:http server that hands every request of a connection, with that connection's context, to
 * whatever handlers `route` points at now (a reload re-points it).
 */
function httpServer(limits: Limits, route: Route<HttpHandlers>, ctx: (socket: Socket) => ConnectionContext): Server {
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
  server.on("clientError", (err, socket) =>
    route.current.clientError(err as NodeJS.ErrnoException, socket as Socket, ctx(socket as Socket)),
  );
  return server;
}

/**
 * An HTTP server that listens nowhere: connections are handed to it, each with its context. The
 * decrypted side of intercepted tunnels comes in here, and goes through the same request path as
 * everything else. One per process; a reload points it at the new handlers.
 */
export class AdoptingServer {
  private readonly server: Server;
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

/** Limits node lets us change on a live server; maxHeaderSize needs a new listener. */
function tune(server: Server, limits: Limits): void {
  server.headersTimeout = limits.headerTimeout;
  server.keepAliveTimeout = limits.idleTimeout;
  server.maxConnections = limits.maxClientConnections;
  // No per-socket inactivity timer on every connection (it costs each read and write a timer
  // refresh): idle keep-alive is keepAliveTimeout, slow headers are headersTimeout, a request body
  // has its own inactivity timer, and a stalled response has sendTimeout.
  server.timeout = 0;
}
