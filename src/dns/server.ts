import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { createServer, isIP, type Server, type Socket } from "node:net";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import { type ListenAddress, normalizeAddress, parseListen } from "../net/address.js";
import type { DnsResolver } from "./resolver.js";

// RFC 7766 §6.2.1.1: a client may pipeline; this many answers owed on one connection is where we
// stop reading from it until some go out (Unbound and Knot use similar per-connection limits).
const MAX_PENDING = 64;
// Back-pressure on writes: above this many bytes queued we stop reading new queries; above
// MAX_QUEUED the client is not reading its answers at all (the kernel's socket buffers, several
// hundred KiB, are full before anything queues here) and the connection is closed.
const PAUSE_QUEUED = 64 * 1024;
const MAX_QUEUED = 256 * 1024;
// Clients rarely use TCP (truncated answers, zone tools); a slowloris flood of connections must not
// take every file descriptor the proxy also needs. Each is bounded in time by tcpIdleTimeout.
const MAX_TCP_CONNECTIONS = 1024;
/** Datagrams held between binding and serving (a worker starting under load): a moment's worth. */
const MAX_HELD = 4096;

export interface DnsAddress {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  /** dns.listen as written: ":53", "127.0.0.1:5353", "[::1]:53". */
  listen: readonly string[];
  /** The resolver in force; read per query, so a reload's new resolver serves at once. */
  resolver: () => DnsResolver;
  log: Logger;
  /** dns.tcpIdleTimeout: an idle connection is closed, and no query may take longer to arrive. */
  tcpIdleTimeout: number;
  /** The server this one replaces: addresses that stay keep its sockets and open connections. */
  previous?: DnsServer;
}

/** One dns.listen address: its UDP socket and TCP listener on the same port, and the open connections. */
interface Binding {
  written: ListenAddress;
  address: string;
  port: number;
  udp: UdpSocket;
  tcp: Server;
  conns: Set<Socket>;
  /** The server whose resolver and limits apply; changes when a successor takes the binding over. */
  owner: DnsServer;
  /** False between prepare and commit: datagrams and connections wait. */
  live: boolean;
  waiting: Socket[];
  /**
   * Datagrams read before commit. In a cluster a new worker's socket is a copy of the one every
   * worker reads: what it reads while preparing is answered at commit, not lost.
   */
  held: [Buffer, RemoteInfo][];
  /** UDP queries read and not yet answered. */
  unanswered: number;
  /** Set by drain(): called when the last unanswered UDP query is answered. */
  drained: (() => void) | undefined;
  udpClosed: boolean;
}

/**
 * UDP and TCP listeners for dns.listen; they only move bytes between the wire and the resolver.
 * A Part, built with the server it replaces: prepare binds only addresses that are new, commit takes
 * the addresses that stay over from the previous server (their sockets and open connections go on
 * as they were), abort closes only what prepare bound, dispose what this server still owns.
 */
export class DnsServer implements Part {
  readonly name = "dns.listen";
  private bindings: Binding[] = [];
  private prepared: Binding[] = [];
  private retained: Binding[] = [];
  private order: Binding[] = [];
  /** Until commit: the server whose addresses this one may take over. */
  private previous: DnsServer | undefined;

  constructor(private readonly o: DnsServerOptions) {
    this.previous = o.previous;
  }

  /** The addresses served once committed, in dns.listen order, with the ports actually bound. */
  get addresses(): DnsAddress[] {
    return this.order.map((b) => ({ address: b.address, port: b.port }));
  }

  /** TCP client connections open on the addresses this server owns. */
  get connections(): number {
    return this.bindings.reduce((n, b) => n + b.conns.size, 0);
  }

  get log(): Logger {
    return this.o.log;
  }

  get idleMs(): number {
    return this.o.tcpIdleTimeout;
  }

  resolver(): DnsResolver {
    return this.o.resolver();
  }

  async prepare(): Promise<void> {
    const available = [...(this.previous?.bindings ?? [])];
    try {
      for (const text of this.o.listen) {
        const addr = parseListen(text);
        if (typeof addr === "string") throw new Error(`${text}: ${addr}`);
        const i = available.findIndex((b) => sameAddress(b, addr));
        const kept = i >= 0 ? available.splice(i, 1)[0] : undefined;
        if (kept) this.retained.push(kept);
        else this.prepared.push(await this.bind(addr));
        this.order.push(kept ?? (this.prepared.at(-1) as Binding));
      }
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  commit(): void {
    const previous = this.previous;
    // Never hold the replaced generation: twenty reloads must not keep twenty servers alive.
    this.previous = undefined;
    if (previous) previous.bindings = previous.bindings.filter((b) => !this.retained.includes(b));
    for (const b of this.retained) b.owner = this;
    for (const b of this.prepared) {
      b.live = true;
      for (const socket of b.waiting.splice(0)) serveTcp(b, socket);
      const held = b.held.splice(0);
      // After the commit: the whole generation (the resolver these are answered with) is in force then.
      if (held.length > 0)
        setImmediate(() => {
          for (const [msg, rinfo] of held) b.udp.emit("message", msg, rinfo);
        });
    }
    this.bindings = [...this.order];
    this.prepared = [];
    this.retained = [];
  }

  async abort(): Promise<void> {
    const bound = this.prepared;
    this.prepared = [];
    this.retained = [];
    this.order = [];
    await Promise.all(bound.map(closeBinding));
  }

  async dispose(): Promise<void> {
    const owned = [...this.bindings, ...this.prepared];
    this.bindings = [];
    this.prepared = [];
    this.order = [];
    await Promise.all(owned.map(closeBinding));
  }

  /**
   * Stopping (SIGTERM, a worker being replaced): no new TCP connection is taken, and each UDP
   * socket is closed as soon as every query it read has been answered, not before: in a cluster
   * the other workers' copies of the socket go on reading, so no query is left unanswered.
   */
  drain(): Promise<void> {
    return Promise.all(this.bindings.map(drainBinding)).then(() => {});
  }

  /** UDP first (with port 0 the kernel picks it), then TCP on the same port. */
  private async bind(addr: ListenAddress): Promise<Binding> {
    for (let attempt = 0; ; attempt++) {
      const udp = await bindUdp(addr).catch((err: NodeJS.ErrnoException) => {
        throw listenError(addr, "UDP", err);
      });
      const { address, port } = udp.address();
      try {
        const binding: Binding = {
          written: addr,
          address,
          port,
          udp,
          tcp: createServer({ allowHalfOpen: true }),
          conns: new Set(),
          owner: this,
          live: false,
          waiting: [],
          held: [],
          unanswered: 0,
          drained: undefined,
          udpClosed: false,
        };
        // Before anything else is awaited: the socket reads from bind on, and in a cluster it is a
        // copy of the one every worker reads, so a datagram with no listener yet would be lost.
        serveUdp(binding);
        await listenTcp(binding, addr.host);
        return binding;
      } catch (err) {
        udp.close();
        // Port 0: the UDP port the kernel chose may be taken for TCP; another pick will do.
        if (addr.port !== 0 || attempt >= 5) throw listenError(addr, "TCP", err as NodeJS.ErrnoException);
      }
    }
  }
}

/** An address that stays across a reload: the same host, and the same port as written or as bound. */
function sameAddress(b: Binding, addr: ListenAddress): boolean {
  return (b.written.host ?? "::") === (addr.host ?? "::") && (addr.port === b.written.port || addr.port === b.port);
}

function listenError(addr: ListenAddress, proto: string, err: NodeJS.ErrnoException): Error {
  const hint =
    err.code === "EADDRINUSE"
      ? "another program serves DNS there (systemd-resolved, dnsmasq?): stop it or choose another address"
      : err.code === "EACCES"
        ? "ports below 1024 need root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=+ep $(which node)), or use a port like 5353"
        : err.code === "EADDRNOTAVAIL"
          ? "no interface of this machine has that address"
          : "";
  return new Error(`cannot listen on ${addr.text} (${proto}): ${err.code ?? err.message}${hint ? `; ${hint}` : ""}`, {
    cause: err,
  });
}

function bindUdp(addr: ListenAddress): Promise<UdpSocket> {
  const v6 = addr.host === undefined || isIP(addr.host) === 6;
  const socket = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: false, reuseAddr: false, lookup: literalLookup });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      socket.close();
      reject(err);
    };
    socket.once("error", fail);
    socket.bind({ address: addr.host ?? "::", port: addr.port }, () => {
      socket.off("error", fail);
      resolve(socket);
    });
  });
}

/**
 * The UDP socket's address lookup: it binds to the listen address and replies to the address each
 * query came from, IP literals, and Node's default (dns.lookup) answers even those on a later
 * tick; this answers at once. Measured against a bare UDP echo, 0.4 to 3 us less CPU per reply.
 * Anything else (never expected) goes to dns.lookup.
 */
function literalLookup(
  address: string,
  options: LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(address);
  if (family !== 0) callback(null, address, family);
  else dnsLookup(address, options, callback);
}

function listenTcp(b: Binding, host: string | undefined): Promise<void> {
  b.tcp.maxConnections = MAX_TCP_CONNECTIONS;
  b.tcp.on("connection", (socket: Socket) => {
    if (b.live) serveTcp(b, socket);
    else {
      socket.pause();
      b.waiting.push(socket);
      socket.on("error", () => socket.destroy());
      socket.on("close", () => {
        b.waiting = b.waiting.filter((w) => w !== socket);
      });
    }
  });
  return new Promise((resolve, reject) => {
    b.tcp.once("error", reject);
    b.tcp.listen({ host: host ?? "::", port: b.port, ipv6Only: false }, () => {
      b.tcp.off("error", reject);
      b.tcp.on("error", (err) => b.owner.log.warn({ err: err.message }, "DNS TCP listener error"));
      resolve();
    });
  });
}

function serveUdp(b: Binding): void {
  const { udp } = b;
  udp.on("error", (err) => b.owner.log.warn({ err: err.message }, "DNS UDP socket error"));
  udp.on("message", (msg, rinfo) => {
    if (!b.live) {
      if (b.held.length < MAX_HELD) b.held.push([msg, rinfo]);
      return;
    }
    const owner = b.owner;
    const resolver = owner.resolver();
    const client = { address: normalizeAddress(rinfo.address), transport: "udp" as const };
    const reply = (bytes: Buffer | null) => {
      // b.live: the socket may have been closed meanwhile (dispose). Nothing may throw here:
      // the promise below has no other handler.
      if (!bytes || !b.live || b.udpClosed) return;
      // No callback: a send error (an unreachable client) is the client's loss, not worth a log
      // line per packet, and without one Node schedules nothing after a send that completed.
      try {
        udp.send(bytes, rinfo.port, rinfo.address);
      } catch (err) {
        owner.log.warn({ err: (err as Error).message }, "DNS UDP reply not sent");
      }
    };
    // A known cache hit is answered in this same callback, with no promise.
    const now = resolver.answerNow(msg, client);
    if (now !== undefined) return reply(now);
    b.unanswered++;
    const settled = () => {
      b.unanswered--;
      if (b.unanswered === 0) b.drained?.();
    };
    resolver.answer(msg, client).then(
      (bytes) => {
        reply(bytes);
        settled();
      },
      (err: unknown) => {
        owner.log.error({ err }, "DNS answer failed");
        settled();
      },
    );
  });
}

function drainBinding(b: Binding): Promise<void> {
  b.tcp.close();
  return new Promise((resolve) => {
    const close = () => {
      b.drained = undefined;
      if (b.udpClosed) return resolve();
      b.udpClosed = true;
      b.udp.close(() => resolve());
    };
    if (b.unanswered === 0 || b.udpClosed) close();
    else b.drained = close;
  });
}

async function closeBinding(b: Binding): Promise<void> {
  b.live = false;
  for (const c of [...b.conns, ...b.waiting]) c.destroy();
  b.conns.clear();
  const udpOpen = !b.udpClosed;
  b.udpClosed = true;
  await Promise.all([
    udpOpen ? new Promise<void>((resolve) => b.udp.close(() => resolve())) : undefined,
    b.tcp.listening ? new Promise<void>((resolve) => b.tcp.close(() => resolve())) : undefined,
  ]);
}

/**
 * One TCP client (RFC 7766): pipelined queries answered as each is ready; reading pauses at
 * MAX_PENDING answers owed or PAUSE_QUEUED bytes queued and resumes as answers go out; a half-close
 * by the client still gets every answer owed before we close. Closed: a length too short for a
 * header (the stream is out of sync), more than MAX_QUEUED bytes queued (the client does not read),
 * a query not complete within tcpIdleTimeout of its first byte (slow writers), and an idle
 * connection. A connection with answers owed is never closed for being idle.
 */
function serveTcp(b: Binding, socket: Socket): void {
  b.conns.add(socket);
  const client = { address: normalizeAddress(socket.remoteAddress ?? ""), transport: "tcp" as const };
  let buf: Buffer = Buffer.alloc(0);
  let pending = 0;
  let paused = false;
  let ended = false;
  let partial: NodeJS.Timeout | undefined;

  const close = () => {
    clearTimeout(partial);
    socket.destroy();
  };

  const pump = () => {
    if (socket.destroyed) return;
    while (buf.length >= 2 && pending < MAX_PENDING && socket.writableLength < PAUSE_QUEUED) {
      const len = buf.readUInt16BE(0);
      if (len < 12) return close();
      if (buf.length < 2 + len) break;
      const msg = Buffer.from(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      pending++;
      ask(msg);
    }
    const blocked = pending >= MAX_PENDING || socket.writableLength >= PAUSE_QUEUED;
    // After the client's FIN, what is left once every whole query is taken is a partial one that
    // can never complete.
    if (ended && !blocked) buf = Buffer.alloc(0);
    if (blocked !== paused) {
      paused = blocked;
      if (blocked) socket.pause();
      else if (!ended) socket.resume();
    }
    // The whole of a query must arrive within tcpIdleTimeout of its first byte; a writer that keeps
    // the connection busy with a byte a second does not hold it longer. Not while we are not reading.
    if (buf.length > 0 && !paused && !ended) partial ??= setTimeout(close, b.owner.idleMs);
    else {
      clearTimeout(partial);
      partial = undefined;
    }
    if (ended && pending === 0 && buf.length === 0 && !socket.writableEnded) socket.end();
  };

  const answered = (bytes: Buffer | null) => {
    pending--;
    if (bytes && !socket.destroyed && !socket.writableEnded) write(bytes);
    pump();
  };
  const ask = (msg: Buffer) => {
    const resolver = b.owner.resolver();
    const now = resolver.answerNow(msg, client);
    // Not from inside pump's loop (answered() pumps): on a microtask, as the chain's promise would.
    if (now !== undefined) return void queueMicrotask(() => answered(now));
    resolver.answer(msg, client).then(answered, (err: unknown) => {
      pending--;
      b.owner.log.error({ err }, "DNS answer failed");
      pump();
    });
  };

  const write = (bytes: Buffer) => {
    if (socket.writableLength + bytes.length > MAX_QUEUED) {
      b.owner.log.debug(
        { client: client.address, queued: socket.writableLength },
        "DNS TCP client does not read its answers; closed",
      );
      return close();
    }
    const frame = Buffer.allocUnsafe(bytes.length + 2);
    frame.writeUInt16BE(bytes.length, 0);
    bytes.copy(frame, 2);
    socket.write(frame);
  };

  socket.setNoDelay(true);
  socket.setTimeout(b.owner.idleMs, () => {
    // Answers owed and the client reading: the wait is ours (a slow upstream), not the client's.
    if (pending > 0 && socket.writableLength === 0) return;
    close();
  });
  socket.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    pump();
  });
  socket.on("end", () => {
    // No more queries, but the answers owed still go out (RFC 7766 §6.2.4).
    ended = true;
    pump();
  });
  socket.on("drain", pump);
  socket.on("error", close);
  socket.on("close", () => {
    clearTimeout(partial);
    b.conns.delete(socket);
  });
  socket.resume();
  pump();
}
