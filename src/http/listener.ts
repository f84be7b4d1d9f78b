import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Config } from "../config/schema.js";
import type { Part } from "../lifecycle/part.js";
import { isLoopback, type ListenAddress, normalizeAddress } from "../net/address.js";
import type { Activity } from "./activity.js";
import type { ConnectionContext, ListenerKind } from "./exchange.js";

/** What a listener hands each request to; it knows nothing of what happens next. */
export interface HttpHandlers {
  request(req: IncomingMessage, res: ServerResponse, ctx: ConnectionContext): void;
  connect(req: IncomingMessage, socket: Socket, head: Buffer, ctx: ConnectionContext): void;
  clientError(err: NodeJS.ErrnoException, socket: Socket, ctx: ConnectionContext): void;
}

type Limits = Config["proxy"]["limits"];

/** One bound server. A reload hands it to the next generation, which points it at its handlers. */
interface Bound {
  server: Server;
  addr: ListenAddress;
  route: { handlers: HttpHandlers };
}

/**
 * The HTTP listeners of one kind on a list of addresses: accept connections, note who and where
 * (the connection context, built once per connection), and pass each request on. A reload keeps
 * the socket and the open connections of every address that stays.
 */
export class HttpListeners implements Part {
  readonly name: string;
  private owned: Bound[] = [];
  private created: Bound[] = [];
  private retained: Bound[] = [];
  private order: Bound[] = [];
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
  }

  async prepare(): Promise<void> {
    const previous = this.opts.previous?.owned ?? [];
    const taken = new Set<Bound>();
    for (const addr of this.opts.listen) {
      const existing = previous.find((b) => !taken.has(b) && sameListen(b.addr, b.server, addr));
      if (existing) {
        taken.add(existing);
        this.order.push(existing);
        continue;
      }
      const bound = await this.bind(addr);
      this.created.push(bound);
      this.order.push(bound);
    }
    this.retained = [...taken];
  }

  commit(): void {
    for (const b of this.retained) {
      this.opts.previous?.release(b);
      b.route.handlers = this.opts.handlers;
      tune(b.server, this.opts.limits);
    }
    this.owned = this.order;
  }

  async abort(): Promise<void> {
    await Promise.all(this.created.map((b) => closeServer(b.server, true)));
    this.created = [];
  }

  async dispose(): Promise<void> {
    const owned = this.owned;
    this.owned = [];
    // Stop accepting; requests in progress finish (a stop cuts them after shutdownGrace).
    await Promise.all(owned.map((b) => closeServer(b.server, false)));
  }

  /** Stops accepting at once without waiting for open connections (SIGTERM). */
  stopAccepting(): void {
    for (const b of this.owned) {
      b.server.close();
      b.server.closeIdleConnections();
    }
  }

  private release(b: Bound): void {
    this.owned = this.owned.filter((o) => o !== b);
  }

  get addresses(): AddressInfo[] {
    return this.owned.map((b) => b.server.address() as AddressInfo);
  }

  get count(): number {
    return this.owned.length;
  }

  private async bind(addr: ListenAddress): Promise<Bound> {
    const route = { handlers: this.opts.handlers };
    const server = httpServer(this.opts.limits, route, (socket) => this.ctx(socket));
    const bound: Bound = { server, addr, route };
    const activity = this.opts.activity;
    server.on("connection", (socket: Socket) => this.contexts.set(socket, this.context(socket)));
    server.on("close", () => activity.servers.delete(server));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${addr.text} (${err.code ?? err.message}); is another program using it?`)),
      );
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.removeAllListeners("error");
        server.on("error", () => {});
        resolve();
      });
    });
    activity.servers.add(server);
    return bound;
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
function httpServer(limits: Limits, route: { handlers: HttpHandlers }, ctx: (socket: Socket) => ConnectionContext): Server {
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
  server.on("request", (req, res) => route.handlers.request(req, res, ctx(req.socket)));
  server.on("checkContinue", (req, res) => route.handlers.request(req, res, ctx(req.socket)));
  server.on("connect", (req, socket, head) => route.handlers.connect(req, socket as Socket, head, ctx(socket as Socket)));
  server.on("clientError", (err, socket) =>
    route.handlers.clientError(err as NodeJS.ErrnoException, socket as Socket, ctx(socket as Socket)),
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
  private readonly route: { handlers: HttpHandlers };

  constructor(handlers: HttpHandlers, limits: Limits, activity: Activity) {
    this.route = { handlers };
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
    this.route.handlers = handlers;
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

function closeServer(server: Server, cutConnections: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    // close() calls back only once every connection has ended; the caller waits for the socket
    // to stop accepting, not for the requests (Activity tracks those).
    server.close();
    if (cutConnections) server.closeAllConnections();
    else server.closeIdleConnections();
    setImmediate(resolve);
  });
}

/**
 * Does a bound socket serve a configured address? The same text ("127.0.0.1:0" stays whatever port
 * it got), or the address it is actually bound to (":0" in a test, then written as the real port).
 */
export function sameListen(
  configured: ListenAddress,
  server: { address(): AddressInfo | string | null },
  addr: ListenAddress,
): boolean {
  if (configured.text === addr.text) return true;
  const bound = server.address();
  if (!bound || typeof bound === "string" || addr.port === 0 || bound.port !== addr.port) return false;
  const host = addr.host ?? "";
  return host === "" ? bound.address === "::" || bound.address === "0.0.0.0" : bound.address === host;
}
