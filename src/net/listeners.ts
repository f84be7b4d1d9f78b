import { type AddressInfo, Server as NetServer, type Server } from "node:net";
import type { Part } from "../lifecycle/part.js";
import type { ListenAddress } from "./address.js";

/** What a bound server calls; a reload points it at the next generation's. */
export interface Route<R> {
  current: R;
}

interface Bound<S extends Server, R> {
  server: S;
  addr: ListenAddress;
  route: Route<R>;
}

export interface BoundSetOptions<S extends Server, R> {
  /** The config key, for errors: "proxy.listen", "fronts[0].listen". */
  key: string;
  listen: readonly ListenAddress[];
  /** What this generation's connections go to. */
  route: R;
  /** Makes a server that calls `route.current`, and binds it to `addr`. */
  bind(addr: ListenAddress, route: Route<R>): Promise<S>;
  /** Applies this generation's settings to a server handed over from the last one. */
  retune?(server: S): void;
  previous?: BoundSet<S, R>;
}

/**
 * Servers of one kind on a list of addresses, as a Part: prepare binds only addresses that are new
 * (an address that stays keeps its socket and its open connections, matched by the address as
 * written or as bound); commit takes the kept servers over and points them at this generation;
 * abort closes only what prepare bound; dispose stops what this set still owns. Used by every
 * TCP listener: the proxy, the fronts.
 */
export class BoundSet<S extends Server, R> implements Part {
  readonly name: string;
  private owned: Bound<S, R>[] = [];
  private created: Bound<S, R>[] = [];
  private retained: Bound<S, R>[] = [];
  private order: Bound<S, R>[] = [];

  constructor(private readonly opts: BoundSetOptions<S, R>) {
    this.name = opts.key;
  }

  async prepare(): Promise<void> {
    const previous = this.opts.previous?.owned ?? [];
    const taken = new Set<Bound<S, R>>();
    for (const addr of this.opts.listen) {
      const existing = previous.find((b) => !taken.has(b) && sameListen(b.addr, b.server, addr));
      if (existing) {
        taken.add(existing);
        this.order.push(existing);
        continue;
      }
      const route: Route<R> = { current: this.opts.route };
      const bound = { server: await this.opts.bind(addr, route), addr, route };
      this.created.push(bound);
      this.order.push(bound);
    }
    this.retained = [...taken];
  }

  commit(): void {
    for (const b of this.retained) {
      this.opts.previous?.release(b);
      b.route.current = this.opts.route;
      this.opts.retune?.(b.server);
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
    // Stop accepting; connections in progress finish (a stop cuts them after shutdownGrace).
    await Promise.all(owned.map((b) => closeServer(b.server, false)));
  }

  /** Stops accepting at once (SIGTERM); resolves when the last open connection has ended. */
  stopAccepting(): Promise<void> {
    return Promise.all(
      this.owned.map((b) => {
        const closed = new Promise<void>((resolve) => (b.server.listening ? b.server.once("close", resolve) : resolve()));
        closeNow(b.server, false);
        return closed;
      }),
    ).then(() => {});
  }

  private release(b: Bound<S, R>): void {
    this.owned = this.owned.filter((o) => o !== b);
  }

  get addresses(): AddressInfo[] {
    return this.owned.map((b) => b.server.address() as AddressInfo);
  }

  get servers(): S[] {
    return this.owned.map((b) => b.server);
  }
}

/** Binds a server, with an error that names the address and says what is likely wrong. */
export function listenOn<S extends Server>(server: S, addr: ListenAddress): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${addr.text} (${err.code ?? err.message}); is another program using it?`)),
    );
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.removeAllListeners("error");
      server.on("error", () => {});
      resolve(server);
    });
  });
}

/** A connection accepted just before a stop gets this long to send its first request. */
const FIRST_REQUEST_MS = 500;
const IDLE_SWEEP_MS = 250;

function closeNow(server: Server, cut: boolean): void {
  // http.Server can close its idle (or all) keep-alive connections; a plain net.Server has none.
  const http = server as Server & { closeIdleConnections?(): void; closeAllConnections?(): void };
  // Stop accepting with net.Server's close: node:http's would also end at once every connection
  // between requests, a connection accepted a moment ago (its request still on the way) among them,
  // which resets a client that did nothing wrong (a worker replaced under load showed it).
  NetServer.prototype.close.call(server);
  if (cut) return http.closeAllConnections?.();
  if (!http.closeIdleConnections) return;
  // Then, keep-alive connections are ended as they fall idle, until the last one has closed.
  let sweep: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    http.closeIdleConnections?.();
    sweep = setInterval(() => http.closeIdleConnections?.(), IDLE_SWEEP_MS);
    sweep.unref();
  }, FIRST_REQUEST_MS);
  first.unref();
  server.once("close", () => {
    clearTimeout(first);
    clearInterval(sweep);
  });
}

function closeServer(server: Server, cut: boolean): Promise<void> {
  if (!server.listening) return Promise.resolve();
  // close() calls back only once every connection has ended; the caller waits for the socket to
  // stop accepting, not for what is in progress (Activity tracks that).
  closeNow(server, cut);
  return new Promise((resolve) => setImmediate(resolve));
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
