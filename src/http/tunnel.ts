import { connect, type Socket } from "node:net";
import type { LookupFunction } from "../net/lookup.js";
import type { Decision } from "../pipeline/stage.js";
import { describeUpstreamError } from "./upstream-errors.js";

export interface TunnelResult {
  /** Bytes sent to the client, for the access log. */
  bytesToClient: number;
  bytesToServer: number;
}

export interface TunnelFailure {
  status: number;
  title: string;
  message: string;
  reason: string;
  decision?: Decision;
}

/**
 * Relays bytes between a client and host:port after CONNECT. Each direction has back-pressure; a
 * FIN from one side is passed on as a FIN to the other (half-close), and the tunnel ends when both
 * directions have ended, on any error, or after `idleMs` with no bytes either way.
 *
 * The origin's bytes (most of a tunnel's traffic: downloads) are read into buffers used again
 * (OriginReader) instead of a new 64 KiB buffer per read, and idleness is one timer per tunnel
 * comparing byte counters instead of a socket timeout re-armed on every read and write of both
 * sockets. The other direction (uploads) is still piped.
 */
export function openTunnel(opts: {
  client: Socket;
  head: Buffer;
  host: string;
  port: number;
  lookup?: LookupFunction;
  /** A connection already being opened (a front's backend, maybe over TLS), instead of host:port. */
  socket?: { socket: Socket; ready: "connect" | "secureConnect" };
  connectTimeoutMs: number;
  idleMs: number;
  /** Checked once connected, on the address actually reached: a reason refuses the tunnel. */
  refuse?: (address: string, port: number) => string | undefined;
  onEstablished: () => void;
  onFailure: (f: TunnelFailure) => void;
  onClose: (r: TunnelResult) => void;
}): Socket {
  const { client } = opts;
  const reader = opts.socket ? undefined : new OriginReader(client);
  const server =
    opts.socket?.socket ??
    connect({
      host: opts.host,
      port: opts.port,
      lookup: opts.lookup as never,
      allowHalfOpen: true,
      // A tunnel mostly carries TLS records, each sent whole: waiting to coalesce them only delays.
      noDelay: true,
      onread: (reader as OriginReader).onread,
    });
  const target = `${opts.host}:${opts.port}`;
  let established = false;
  let closed = false;
  let idleTimer: NodeJS.Timeout | undefined;
  const clientStart = client.bytesWritten;
  const fail = (f: TunnelFailure) => {
    if (closed) return;
    closed = true;
    clearTimeout(connectTimer);
    server.destroy();
    opts.onFailure(f);
  };
  const connectTimer = setTimeout(() => {
    fail({
      status: 504,
      title: "Connection timed out",
      message: `Could not open a tunnel: ${target} did not accept a connection in time.`,
      reason: `${target} did not accept a connection in time`,
    });
  }, opts.connectTimeoutMs);

  const finish = () => {
    if (closed) return;
    closed = true;
    clearTimeout(connectTimer);
    clearInterval(idleTimer);
    client.destroy();
    server.destroy();
    reader?.release();
    opts.onClose({ bytesToClient: client.bytesWritten - clientStart, bytesToServer: server.bytesWritten });
  };

  server.once(opts.socket?.ready ?? "connect", () => {
    clearTimeout(connectTimer);
    const refused = opts.refuse?.(server.remoteAddress ?? "", server.remotePort ?? 0);
    if (refused) {
      fail({
        status: 403,
        title: "Destination not allowed",
        message: `Could not open a tunnel: ${refused}; a tunnel to it would loop back into the proxy.`,
        reason: refused,
        decision: { stage: "self", action: "deny", reason: refused },
      });
      return;
    }
    established = true;
    opts.onEstablished();
    if (opts.head.length > 0) server.write(opts.head);
    idleTimer = watchIdle(client, server, opts.idleMs, finish);
    client.pipe(server);
    if (reader) reader.start(server);
    else server.pipe(client);
    let ended = 0;
    const halfDone = () => {
      ended++;
      if (ended === 2) finish();
    };
    // Each direction ends its destination when its source sends FIN; once both writable sides
    // have flushed and finished, nothing more can flow either way.
    client.once("finish", halfDone);
    server.once("finish", halfDone);
  });
  server.once("error", (err: NodeJS.ErrnoException) => {
    if (established) return finish();
    const p = describeUpstreamError(err, { host: target, hostname: opts.host }, { connect: opts.connectTimeoutMs, headers: 0 });
    fail({
      status: p.page.status,
      title: p.page.title,
      message: p.page.status === 403 ? p.page.message : `Could not open a tunnel: ${target}: ${err.code ?? err.message}.`,
      reason: `${target}: ${err.code ?? err.message}`,
      decision: p.decision,
    });
  });
  client.once("error", finish);
  client.once("close", () => {
    if (!closed && !established) {
      closed = true;
      clearTimeout(connectTimer);
      server.destroy();
      reader?.release();
      opts.onClose({ bytesToClient: 0, bytesToServer: 0 });
      return;
    }
    finish();
  });
  server.once("close", () => {
    if (established) finish();
  });
  return server;
}

/**
 * Calls `idle` once `idleMs` have passed with no byte read on either socket (so none written
 * either), checked a few times per period: the tunnel is closed between idleMs and 1.25 x idleMs
 * after its last byte, never sooner.
 */
function watchIdle(a: Socket, b: Socket, idleMs: number, idle: () => void): NodeJS.Timeout {
  let seen = -1;
  let since = Date.now();
  const timer = setInterval(
    () => {
      const bytes = a.bytesRead + b.bytesRead;
      const now = Date.now();
      if (bytes !== seen) {
        seen = bytes;
        since = now;
      } else if (now - since >= idleMs) idle();
    },
    Math.max(1, Math.ceil(idleMs / 4)),
  );
  timer.unref();
  return timer;
}

/** Read buffer for a tunnel at rest or trickling: a TLS record fits. */
const SMALL = 16384;
/** Read buffer for a tunnel in full flow, while the flow lasts. */
const LARGE = 65536;
/** Buffers no tunnel holds, kept for the next ones (1 MiB of each size at most). */
const FREE = { [SMALL]: [] as Buffer[], [LARGE]: [] as Buffer[] };
const FREE_MAX = { [SMALL]: 64, [LARGE]: 16 };

/**
 * The origin-to-client direction of a tunnel without a new buffer per read: the origin socket
 * reads into a buffer of the tunnel's (node's `onread`), written to the client at once. A write
 * the kernel takes whole (the usual case) leaves the buffer free for the next read; one it does
 * not keeps the buffer (the pending write points into it) and the next read gets another. A read
 * that fills the SMALL buffer moves the tunnel to a LARGE one, a read that SMALL would have held
 * moves it back, and the LARGE buffer goes back to FREE for another tunnel. A write that returns
 * false (the client is slower than the origin) stops reading until 'drain'.
 *
 * Why: piped, every read allocated 64 KiB outside the heap, 128 of them per 8 MiB, which V8 frees
 * only by collecting. In most runs with idle spells between bursts, V8 sooner or later settled
 * into a full mark-compact of gatehouse's ~20 MB heap every 40-80 ms, for good: bench/connect.sh
 * (8 MiB per tunnel, 2 cores) measured 34 ms of CPU per tunnel then (26 tunnels per CPU-second,
 * 0.59x Squid's MiB/s), 6-8 ms before; with these buffers 6.6-7 ms whatever the history (151 per
 * CPU-second, a bare node:http piper 135). Larger buffers (128, 256 KiB) measured no better.
 */
class OriginReader {
  private small = take(SMALL);
  /** Where the next read goes: node asks right after each callback. */
  private buffer = this.small;
  /** LARGE buffers lent to writes not yet flushed, free again once the client has taken all. */
  private readonly lent: Buffer[] = [];
  private server: Socket | undefined;
  private released = false;
  private readonly resume = () => this.server?.resume();

  readonly onread = {
    buffer: () => this.buffer,
    callback: (n: number, buf: Buffer) => this.data(n, buf),
  };

  constructor(private readonly client: Socket) {}

  /** The tunnel is established: bytes may flow, and the origin's FIN ends the client's side. */
  start(server: Socket): void {
    this.server = server;
    server.once("end", () => this.client.end());
  }

  private data(n: number, buf: Buffer): boolean {
    // Connect handlers run before the first read: nothing reaches a client the tunnel has not
    // been established for.
    if (this.server === undefined) return false;
    const { client } = this;
    const more = client.write(n === buf.length ? buf : buf.subarray(0, n));
    const lent = client.writableLength > 0;
    if (!lent && this.lent.length > 0) {
      for (const b of this.lent) giveBack(b);
      this.lent.length = 0;
    }
    if (buf.length === LARGE) {
      if (lent) this.lent.push(buf);
      if (n < SMALL) {
        if (!lent) giveBack(buf);
        this.buffer = this.small;
      } else if (lent) this.buffer = take(LARGE);
    } else {
      // A SMALL buffer lent to a write is left to it (and to the garbage collector).
      if (lent) this.small = take(SMALL);
      this.buffer = n === SMALL ? take(LARGE) : this.small;
    }
    if (more) return true;
    client.once("drain", this.resume);
    return false;
  }

  /**
   * The tunnel is over and its origin socket destroyed, so no read can come: its buffers serve
   * other tunnels (neither is lent to a write: a lent one was replaced at once).
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.buffer !== this.small) giveBack(this.buffer);
    giveBack(this.small);
    this.lent.length = 0;
  }
}

function take(size: typeof SMALL | typeof LARGE): Buffer {
  return FREE[size].pop() ?? Buffer.allocUnsafeSlow(size);
}

function giveBack(b: Buffer): void {
  const free = FREE[b.length as typeof SMALL | typeof LARGE];
  if (free.length < FREE_MAX[b.length as typeof SMALL | typeof LARGE]) free.push(b);
}
