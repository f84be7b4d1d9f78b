import { connect, type Server, type Socket } from "node:net";
import { pipeline } from "node:stream/promises";
import { servername } from "../tcp/backend.js";
import type { SessionContext } from "../tcp/protocol.js";
import type { Relay } from "../tcp/relay.js";
import { secureAsClient, secureAsServer } from "../tcp/tls.js";
import type { FtpAction, FtpDialogue } from "./control.js";
import type { PassivePorts } from "./passive.js";

/** A client has this long to connect to the passive port, and a backend or client to accept. */
const CONNECT_MS = 30_000;

interface Link {
  mode: "pasv" | "epsv" | "active";
  backendPort: number;
  target: { host: string; port: number } | undefined;
  server: Server | undefined;
  /** The client's passive connection, accepted (and paused) before or during the transfer. */
  accepted: Socket | undefined;
  onAccept: ((s: Socket) => void) | undefined;
  /** Stops waiting for the client's passive connection (the link was dropped). */
  cancel: (() => void) | undefined;
  sockets: Set<Socket>;
  state: "prepared" | "transferring" | "done" | "failed" | "aborted";
  error: string | undefined;
}

/**
 * The data connections of one FTP session: carries out the control dialogue's data actions over
 * sockets. Each transfer pipes one direction with back-pressure; its final reply from the backend is
 * held until the piped data is delivered to the client (or replaced by a 426 if it was not).
 */
export class FtpData {
  private link: Link | undefined;
  private held: string | undefined;

  constructor(
    private readonly relay: Relay<FtpAction>,
    private readonly dialogue: FtpDialogue,
    private readonly ctx: SessionContext,
    private readonly ports: PassivePorts,
    private readonly idleMs: number,
  ) {}

  handle(a: FtpAction): void {
    switch (a.data) {
      case "open":
        return this.open(a.mode, a.backendPort, a.target);
      case "transfer":
        return this.transfer(a.direction, a.clientTls, a.backendTls);
      case "finish":
        return this.finish(a.line);
      case "abort":
        return this.abort(a.reason);
    }
  }

  /** The session ended: nothing of it stays open. */
  close(): void {
    this.drop(this.link);
    this.link = undefined;
  }

  private open(mode: Link["mode"], backendPort: number, target: Link["target"]): void {
    this.drop(this.link);
    const link: Link = {
      mode,
      backendPort,
      target,
      server: undefined,
      accepted: undefined,
      onAccept: undefined,
      cancel: undefined,
      sockets: new Set(),
      state: "prepared",
      error: undefined,
    };
    this.link = link;
    if (mode === "active") return queueMicrotask(() => this.ready({ port: 0 }));
    const { client, local, who, log } = this.ctx;
    this.ports
      .open(
        local.address,
        client.address,
        (socket) => {
          link.sockets.add(socket);
          socket.on("error", () => {});
          if (link.onAccept) link.onAccept(socket);
          else link.accepted = socket;
        },
        (from, port) =>
          log.warn(
            { client: client.address, from, port },
            `${who}: refused a data connection from ${from} to passive port ${port}: only ${client.address}, which asked for it, may connect`,
          ),
      )
      .then(
        ({ server, port }) => {
          if (this.link !== link) return void server.close();
          link.server = server;
          // A client that never connects does not keep the port.
          setTimeout(() => server.close(), CONNECT_MS).unref();
          this.ready({ port });
        },
        (err: Error) => {
          log.warn({ client: client.address }, `${who}: ${err.message}; widen the front's passive range`);
          this.ready({ error: err.message });
        },
      )
      .catch((err: Error) => this.relay.destroy("error", `internal error: ${err.message}`));
  }

  private ready(result: { port: number } | { error: string }): void {
    if (!this.relay.isEnded) this.relay.apply(this.dialogue.dataReady(result));
  }

  private transfer(direction: "download" | "upload", clientTls: boolean, backendTls: boolean): void {
    const link = this.link;
    if (!link) return;
    link.state = "transferring";
    this.relay.setIdle(false);
    this.run(link, direction, clientTls, backendTls)
      .then(
        () => this.settled(link, undefined),
        (err: Error) => this.settled(link, err.message),
      )
      .catch((err: Error) => this.relay.destroy("error", `internal error: ${err.message}`));
  }

  private async run(link: Link, direction: "download" | "upload", clientTls: boolean, backendTls: boolean): Promise<void> {
    const [backend, client] = await Promise.all([this.backendSide(link, backendTls), this.clientSide(link, clientTls)]);
    for (const s of [backend, client])
      s.setTimeout(this.idleMs, () => s.destroy(new Error("the data connection was idle for too long")));
    if (direction === "download") {
      client.on("drain", () => {});
      backend.on("data", (chunk: Buffer) => {
        this.relay.bytesOut += chunk.length;
      });
      await pipeline(backend, client);
    } else {
      client.on("data", (chunk: Buffer) => {
        this.relay.bytesIn += chunk.length;
      });
      await pipeline(client, backend);
    }
  }

  private async backendSide(link: Link, tls: boolean): Promise<Socket> {
    const raw = await dial(link, this.ctx.backend.host, link.backendPort, undefined);
    if (!tls) return raw;
    // vsftpd's require_ssl_reuse (and RFC 4217 §10.2): the data connection resumes the control session.
    const secured = await secureAsClient(raw, servername(this.ctx.backend.host), this.relay.backendSession, CONNECT_MS);
    link.sockets.add(secured);
    return secured;
  }

  private async clientSide(link: Link, tls: boolean): Promise<Socket> {
    let raw: Socket;
    if (link.mode === "active") {
      const t = link.target as { host: string; port: number };
      raw = await dial(link, t.host, t.port, this.ctx.local.address);
    } else {
      raw = link.accepted ?? (await this.accepted(link));
    }
    raw.resume();
    if (!tls) return raw;
    // RFC 4217 §7: the server side of FTP is the TLS server on data connections, whoever connects.
    const secured = await secureAsServer(raw, this.ctx.serverTls, CONNECT_MS);
    link.sockets.add(secured);
    return secured;
  }

  private accepted(link: Link): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no data connection from the client within ${CONNECT_MS / 1000}s`)),
        CONNECT_MS,
      );
      link.onAccept = (s) => {
        clearTimeout(timer);
        resolve(s);
      };
      link.cancel = () => {
        clearTimeout(timer);
        reject(new Error("the data connection was dropped"));
      };
    });
  }

  private settled(link: Link, error: string | undefined): void {
    if (link.state === "aborted" || this.link !== link) return;
    link.state = error ? "failed" : "done";
    link.error = error;
    this.relay.setIdle(true);
    if (error) {
      this.ctx.log.info({ client: this.ctx.client.address }, `${this.ctx.who}: data transfer failed: ${error}`);
      this.dropSockets(link);
    }
    if (this.held !== undefined) {
      const line = this.held;
      this.held = undefined;
      this.deliver(link, line);
    }
  }

  private finish(line: string): void {
    const link = this.link;
    if (!link || link.state === "done" || link.state === "failed") return this.deliver(link, line);
    this.held = line;
  }

  private deliver(link: Link | undefined, line: string): void {
    if (link === this.link) this.link = undefined;
    this.dropServer(link);
    const reply = link?.state === "failed" ? `426 Connection closed; transfer aborted: ${link.error}` : line;
    this.relay.apply([{ send: "client", line: reply }]);
  }

  private abort(reason: string): void {
    const link = this.link;
    this.link = undefined;
    if (!link) return;
    link.state = "aborted";
    this.relay.setIdle(true);
    this.drop(link);
    if (this.held !== undefined) {
      this.held = undefined;
      this.relay.apply([{ send: "client", line: `426 Transfer aborted: ${reason}` }]);
    }
  }

  private drop(link: Link | undefined): void {
    if (!link) return;
    if (link.state === "transferring") link.state = "aborted";
    link.cancel?.();
    this.dropServer(link);
    this.dropSockets(link);
  }

  private dropServer(link: Link | undefined): void {
    link?.server?.close();
  }

  private dropSockets(link: Link): void {
    // A reset, not a clean end: the peer must not take a cut transfer for a whole one.
    for (const s of link.sockets) if (!s.destroyed) s.resetAndDestroy();
  }
}

function dial(link: Link, host: string, port: number, localAddress: string | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, localAddress });
    link.sockets.add(s);
    s.setTimeout(CONNECT_MS, () => s.destroy(new Error(`no data connection to ${host}:${port} within ${CONNECT_MS / 1000}s`)));
    s.once("connect", () => {
      s.setTimeout(0);
      s.removeAllListeners("error");
      s.on("error", () => {});
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot open the data connection to ${host}:${port} (${err.code ?? err.message})`)),
    );
  });
}
