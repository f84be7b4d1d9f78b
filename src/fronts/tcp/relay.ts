import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "../../log/logger.js";
import {
  type Action,
  type CoreAction,
  type Dialogue,
  other,
  type ProtocolLines,
  type SessionResult,
  type Side,
} from "./dialogue.js";
import { Framer } from "./framer.js";
import { type ServerTls, secureAsClient, secureAsServer, tlsVersion } from "./tls.js";

/** Bytes held from a client whose lines must wait (or from a side whose peer is slow) before reading stops. */
const HOLD_BYTES = 64 * 1024;

interface End {
  result: SessionResult;
  reason: string;
}

interface Conduit {
  side: Side;
  stream: Socket;
  framer: Framer;
  /** Reasons reading is paused: the peer's buffer is full, too much is held, TLS is being set up. */
  holds: Set<string>;
  onData: (chunk: Buffer) => void;
  /** Written while the side switches to TLS: sent once it is secured, never in clear. */
  queued: Buffer[];
}

export interface RelayOptions<X> {
  client: Socket;
  backend: Socket;
  dialogue: Dialogue<X>;
  lines: ProtocolLines;
  limits: { client: number; backend: number };
  idleMs: number;
  handshakeMs: number;
  clientTls: ServerTls;
  backendName: string | undefined;
  /** Actions the dialogue defines beyond the core ones (FTP's data connections). */
  extra?: (action: X) => void;
  log: Logger;
  /** For messages: "client 192.0.2.7 of front mail". */
  who: string;
  onEnd(end: End): void;
}

function isCore<X>(a: Action<X>): a is CoreAction {
  return typeof a === "object" && a !== null && ("send" in a || "pass" in a || "passDot" in a || "tls" in a || "close" in a);
}

/**
 * The socket layer of a front's session: reads both sides through framers, feeds the dialogue,
 * carries out its actions, and keeps memory bounded (a side whose peer does not read is paused).
 */
export class Relay<X = never> {
  private readonly sides: Record<Side, Conduit>;
  private ended: End | undefined;
  private pumping = false;
  private idle = true;
  /** Cleartext bytes from and to the client (FTP adds its data connections). */
  bytesIn = 0;
  bytesOut = 0;
  /** The backend's latest TLS session, for data connections that must reuse it. */
  backendSession: Buffer | undefined;

  constructor(private readonly opts: RelayOptions<X>) {
    this.sides = {
      client: this.conduit("client", opts.client, opts.limits.client),
      backend: this.conduit("backend", opts.backend, opts.limits.backend),
    };
    this.watchBackendSession(opts.backend);
    this.setIdle(true);
  }

  /** Starts reading both sides. */
  start(): void {
    this.attach(this.sides.client);
    this.attach(this.sides.backend);
  }

  get clientTls(): string {
    return tlsVersion(this.sides.client.stream);
  }

  get isEnded(): boolean {
    return this.ended !== undefined;
  }

  /** The client idle timer; FTP stops it while a data connection carries the traffic. */
  setIdle(on: boolean): void {
    this.idle = on;
    this.sides.client.stream.setTimeout(on ? this.opts.idleMs : 0);
  }

  apply(actions: readonly Action<X>[]): void {
    for (const a of actions) {
      if (this.ended) return;
      if (!isCore(a)) {
        this.opts.extra?.(a);
        continue;
      }
      if ("send" in a) this.write(a.send, Buffer.from(`${a.line}\r\n`, "latin1"));
      else if ("pass" in a) this.sides[a.pass].framer.count(a.bytes);
      else if ("passDot" in a) this.sides[a.passDot].framer.dot();
      else if ("tls" in a) this.startTls(a.tls);
      else this.end(a.close, a.reason);
    }
    this.pump();
  }

  end(result: SessionResult, reason: string): void {
    if (this.ended) return;
    this.ended = { result, reason };
    const { client, backend } = this.sides;
    client.stream.setTimeout(0);
    for (const c of [client, backend]) c.stream.removeListener("data", c.onData);
    // What was sent is flushed first; a peer that never reads is cut after a grace.
    client.stream.end();
    backend.stream.end();
    const cut = setTimeout(() => {
      client.stream.destroy();
      backend.stream.destroy();
    }, 5_000);
    cut.unref();
    this.opts.onEnd(this.ended);
  }

  shutdown(): void {
    if (this.ended) return;
    this.write("client", Buffer.from(`${this.opts.lines.shutdown}\r\n`, "latin1"));
    this.end("closed", "gatehouse stopped");
  }

  /** Cuts both connections at once (errors). */
  destroy(result: SessionResult, reason: string): void {
    this.end(result, reason);
    this.sides.client.stream.destroy();
    this.sides.backend.stream.destroy();
  }

  write(side: Side, data: Buffer): void {
    const c = this.sides[side];
    if (c.stream.destroyed || c.stream.writableEnded) return;
    if (side === "client") this.bytesOut += data.length;
    if (c.holds.has("tls")) return void c.queued.push(data);
    if (!c.stream.write(data)) {
      // The peer reads slower than the other side sends: stop reading the sender until it drains.
      const source = this.sides[other(side)];
      source.holds.add("drain");
      this.updateFlow(source);
      c.stream.once("drain", () => {
        source.holds.delete("drain");
        this.updateFlow(source);
      });
    }
  }

  private conduit(side: Side, stream: Socket, limit: number): Conduit {
    const c: Conduit = {
      side,
      stream,
      framer: new Framer(limit),
      holds: new Set(),
      queued: [],
      onData: (chunk: Buffer) => {
        if (side === "client") this.bytesIn += chunk.length;
        c.framer.push(chunk);
        this.pump();
      },
    };
    return c;
  }

  private attach(c: Conduit): void {
    const s = c.stream;
    s.on("data", c.onData);
    s.on("end", () => this.onEndOf(c));
    s.on("error", (err: Error) => this.destroy("error", `${c.side} connection failed: ${err.message}`));
    s.on("close", () => {
      if (!this.ended) this.destroy(c.side === "client" ? "closed" : "error", `${c.side} closed the connection`);
    });
    if (c.side === "client")
      s.on("timeout", () => {
        if (!this.idle || this.ended) return;
        this.write("client", Buffer.from(`${this.opts.lines.idle}\r\n`, "latin1"));
        this.end("timeout", `idle for ${Math.round(this.opts.idleMs / 1000)}s`);
      });
  }

  private watchBackendSession(s: Socket): void {
    s.on("session", (session: Buffer) => {
      this.backendSession = session;
    });
  }

  private onEndOf(c: Conduit): void {
    if (this.ended) return;
    if (c.side === "backend") {
      this.apply(this.opts.dialogue.backendClosed());
      this.end("closed", "the backend closed the connection");
    } else {
      this.end("closed", "the client closed the connection");
    }
  }

  /** Feeds buffered input to the dialogue until nothing more can be read now. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let progressed = true;
      while (progressed && !this.ended) {
        progressed = this.pumpSide(this.sides.backend) || this.pumpSide(this.sides.client);
      }
      for (const c of Object.values(this.sides)) {
        if (c.side === "client")
          c.holds[this.opts.dialogue.holdClient && c.framer.buffered > HOLD_BYTES ? "add" : "delete"]("held");
        this.updateFlow(c);
      }
    } finally {
      this.pumping = false;
    }
  }

  private pumpSide(c: Conduit): boolean {
    if (c.holds.has("tls") || this.ended) return false;
    if (c.side === "client" && this.opts.dialogue.holdClient && !c.framer.inStretch) return false;
    const item = c.framer.next();
    if (!item) return false;
    if (item.kind === "overlong") {
      if (c.side === "client") {
        this.write("client", Buffer.from(`${this.opts.lines.overlong}\r\n`, "latin1"));
        this.end("error", `sent a line longer than ${item.limit} bytes`);
      } else this.destroy("error", `the backend sent a line longer than ${item.limit} bytes`);
      return false;
    }
    if (item.kind === "raw") {
      this.write(other(c.side), item.data);
      if (item.last) this.applyNow(this.opts.dialogue.passed(c.side));
      return true;
    }
    this.applyNow(this.opts.dialogue.line(c.side, item.line));
    return true;
  }

  /** apply() without re-entering pump (we are in it). */
  private applyNow(actions: readonly Action<X>[]): void {
    const was = this.pumping;
    this.pumping = true;
    try {
      this.apply(actions);
    } finally {
      this.pumping = was;
    }
  }

  private updateFlow(c: Conduit): void {
    if (c.stream.destroyed) return;
    if (c.holds.size > 0) c.stream.pause();
    else c.stream.resume();
  }

  private startTls(side: Side): void {
    const c = this.sides[side];
    const dropped = c.framer.discard();
    if (dropped > 0) {
      const what = side === "client" ? this.opts.who : `the backend of ${this.opts.who}`;
      // RFC 3207 §4.2 and CVE-2011-0411: bytes sent before the handshake are never read as commands.
      this.opts.log.warn(
        { side, bytes: dropped },
        `${what}: discarded ${dropped} bytes of plaintext sent after STARTTLS before the TLS handshake (command injection)`,
      );
    }
    c.holds.add("tls");
    const raw = c.stream;
    raw.removeListener("data", c.onData);
    raw.removeAllListeners("end");
    raw.removeAllListeners("timeout");
    raw.removeAllListeners("close");
    raw.setTimeout(0);
    // A client that goes quiet after STARTTLS is idle like any other (and never waits past the handshake timeout).
    const within = Math.min(this.opts.handshakeMs, this.opts.idleMs);
    const secured =
      side === "client"
        ? secureAsServer(raw, this.opts.clientTls, within)
        : secureAsClient(raw, this.opts.backendName, this.backendSession, this.opts.handshakeMs);
    secured
      .then(
        (tls: TLSSocket) => {
          if (this.ended) return void tls.destroy();
          c.stream = tls;
          c.holds.delete("tls");
          for (const data of c.queued.splice(0)) tls.write(data);
          if (side === "backend") this.watchBackendSession(tls);
          this.attach(c);
          if (side === "client") this.setIdle(this.idle);
          this.apply(this.opts.dialogue.secured(side));
        },
        (err: Error) => {
          const who = side === "client" ? "the client" : "the backend";
          this.destroy(err.message.includes("within") ? "timeout" : "error", `${who}: ${err.message}`);
        },
      )
      // Nothing above should throw; if it does, this session ends and the process serves on.
      .catch((err: Error) => this.destroy("error", `internal error: ${err.message}`));
  }
}
