import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { hostname } from "node:os";
import type { FrontConfig } from "../../config/fronts-schema.js";
import type { SessionEvent } from "../../events/events.js";
import { Tasks } from "../../lifecycle/tasks.js";
import { normalizeAddress, parseHostAndPort, parseListen } from "../../net/address.js";
import { BoundSet, listenOn } from "../../net/listeners.js";
import { proxyHeader } from "../../net/proxy-protocol.js";
import type { Decision } from "../../pipeline/stage.js";
import { Backends } from "../health.js";
import type { FrontDeps, FrontPart } from "../types.js";
import { bannerCheck, dialBackend, type TcpBackend } from "./backend.js";
import type { SessionResult } from "./dialogue.js";
import type { SessionContext, SessionHandle, TcpProtocol } from "./protocol.js";
import { type ServerTls, secureAsServer, tlsVersion } from "./tls.js";

const CONNECT_MS = 10_000;

type Handler = (socket: Socket) => void;

/**
 * One FTP or mail front as a part: its listeners (kept across reloads), the firewall and the
 * per-client limit at accept, implicit TLS, the backend with its health, and one session event per
 * connection. The protocol (ftp/, mail/) supplies the dialogue; this file knows no protocol.
 */
export class TcpFront implements FrontPart {
  readonly name: string;
  readonly fronts: string[];
  private readonly listeners: BoundSet<Server, Handler>;
  private readonly backends: Backends<TcpBackend>;
  /** Open sessions per client address, shared with the generations before and after this one. */
  readonly perClient: Map<string, number>;
  private readonly tasks: Tasks;

  constructor(
    private readonly front: FrontConfig,
    private readonly deps: FrontDeps,
    private readonly protocol: TcpProtocol,
    previous: FrontPart | undefined,
  ) {
    this.name = `fronts.${front.name}`;
    this.fronts = [front.name];
    this.tasks = new Tasks(deps.log, `front ${front.name}`);
    const prev = previous instanceof TcpFront ? previous : undefined;
    this.perClient = prev?.perClient ?? new Map();
    const target = parseHostAndPort(front.backend as string) as { host: string; port: number };
    const backend: TcpBackend = { label: `${target.host}:${target.port}`, ...target };
    this.backends = new Backends(
      front.name,
      [backend],
      front,
      bannerCheck({ tls: front.backendTls === "tls" }, front.clientAddress, protocol.banner, protocol.goodbye),
      deps.log,
      deps.events,
      prev?.backends,
    );
    this.listeners = new BoundSet<Server, Handler>({
      key: `fronts.${front.name}.listen`,
      listen: front.listen.map((l) => parseListen(l) as Exclude<ReturnType<typeof parseListen>, string>),
      route: (socket) => this.accept(socket),
      bind: (addr, route) => {
        const server = createServer({ pauseOnConnect: true }, (socket) => route.current(socket));
        return listenOn(server, addr);
      },
      previous: prev?.listeners,
    });
  }

  get addresses(): AddressInfo[] {
    return this.listeners.addresses;
  }

  async prepare(): Promise<void> {
    await this.listeners.prepare();
  }

  commit(): void {
    this.listeners.commit();
    this.backends.start();
  }

  async abort(): Promise<void> {
    await this.listeners.abort();
  }

  async dispose(): Promise<void> {
    await this.listeners.dispose();
    await this.backends.stop();
  }

  stopAccepting(): Promise<void> {
    return this.listeners.stopAccepting();
  }

  health() {
    return [{ front: this.front.name, backends: this.backends.status() }];
  }

  private accept(socket: Socket): void {
    const start = Date.now();
    const client = normalizeAddress(socket.remoteAddress ?? "");
    const who = `client ${client} of front ${this.front.name}`;
    socket.on("error", () => {});
    const event = (result: SessionResult, extra: Partial<SessionEvent> = {}): SessionEvent => ({
      start,
      durationMs: Date.now() - start,
      front: this.front.name,
      protocol: this.front.protocol,
      client,
      backend: "-",
      bytesIn: 0,
      bytesOut: 0,
      tls: "none",
      result,
      ...extra,
    });

    const decision = this.firewall(client, socket.localPort ?? 0);
    if (decision?.action === "deny" || decision?.action === "block") {
      const bytesOut = this.turnAway(socket, "denied");
      this.deps.log.info({ client, front: this.front.name, rule: decision.rule }, `${who}: refused by ${decision.reason}`);
      return this.deps.events.session.emit(event("refused", { detail: decision.reason, decision, bytesOut }));
    }
    const count = this.perClient.get(client) ?? 0;
    if (count >= this.front.limits.perClient) {
      const bytesOut = this.turnAway(socket, "busy");
      const detail = `${count} connections open from this address (limits.perClient is ${this.front.limits.perClient})`;
      this.deps.log.warn({ client, front: this.front.name }, `${who}: refused, ${detail}`);
      return this.deps.events.session.emit(event("refused", { detail, bytesOut }));
    }
    this.perClient.set(client, count + 1);
    this.deps.activity.addTunnel(socket);
    let finished = false;
    const finish = (e: SessionEvent) => {
      if (finished) return;
      finished = true;
      const n = (this.perClient.get(client) ?? 1) - 1;
      if (n > 0) this.perClient.set(client, n);
      else this.perClient.delete(client);
      this.deps.activity.removeTunnel(socket);
      if (e.result === "error" || e.result === "backend-down")
        this.deps.log.warn({ client, front: this.front.name, backend: e.backend }, `${who}: ${e.detail}`);
      this.deps.events.session.emit({ ...e, durationMs: Date.now() - start });
    };
    let started = false;
    socket.once("close", () => {
      // A session that never reached its relay (handshake or backend failed) ends here.
      if (!started) finish(event("closed", { detail: "the client left before the session started" }));
    });
    const done = (result: SessionResult, detail: string, more?: Partial<SessionEvent>) =>
      finish(event(result, { detail, ...more }));
    this.tasks.run(`the session of ${who}`, async () => {
      try {
        await this.begin(socket, client, who, done, () => {
          started = true;
        });
      } catch (err) {
        // A fault of gatehouse's own: the client is let go, the session counted, the cause logged.
        socket.destroy();
        done("error", `internal error: ${(err as Error).message}`);
        throw err;
      }
    });
  }

  /** Implicit TLS, the backend connection, then the protocol's session; `started` once it runs. */
  private async begin(
    raw: Socket,
    client: string,
    who: string,
    done: (result: SessionResult, detail: string, more?: Partial<SessionEvent>) => void,
    started: () => void,
  ): Promise<void> {
    const serverTls = this.serverTls();
    let clientSocket: Socket = raw;
    if (this.protocol.implicitTls) {
      raw.resume();
      try {
        clientSocket = await secureAsServer(raw, serverTls, this.deps.handshakeTimeoutMs);
      } catch (err) {
        raw.destroy();
        done("error", `${(err as Error).message}`);
        return;
      }
    }
    const backend = this.backends.pick();
    if (!backend) {
      const bytesOut = this.turnAway(clientSocket, "down");
      done("backend-down", "every backend is down", { tls: tlsVersion(clientSocket), bytesOut });
      return;
    }
    const local = { address: normalizeAddress(raw.localAddress ?? ""), port: raw.localPort ?? 0 };
    const remote = { address: client, port: raw.remotePort ?? 0 };
    const ca = this.front.clientAddress;
    let backendSocket: Socket;
    try {
      backendSocket = await dialBackend(backend, {
        tls: this.front.backendTls === "tls",
        header: ca === "proxy-v1" || ca === "proxy-v2" ? proxyHeader(ca, { client: remote, local }) : undefined,
        timeoutMs: CONNECT_MS,
      });
    } catch (err) {
      this.backends.failed(backend, (err as Error).message);
      const bytesOut = this.turnAway(clientSocket, "down");
      done("backend-down", (err as Error).message, { backend: backend.label, tls: tlsVersion(clientSocket), bytesOut });
      return;
    }
    if (raw.destroyed) {
      backendSocket.destroy();
      done("closed", "the client left before the backend answered", { backend: backend.label });
      return;
    }
    this.backends.succeeded(backend);
    const ctx: SessionContext = {
      front: this.front,
      client: remote,
      local,
      clientTls: this.protocol.implicitTls,
      backend,
      serverTls,
      log: this.deps.log,
      who,
    };
    const handle: SessionHandle = this.protocol.session(ctx, {
      client: clientSocket,
      backend: backendSocket,
      idleMs: this.front.limits.idleTimeout || this.protocol.idleMs,
      handshakeMs: this.deps.handshakeTimeoutMs,
      onEnd: ({ result, reason }) => {
        done(result, reason, {
          backend: backend.label,
          bytesIn: handle.bytesIn,
          bytesOut: handle.bytesOut,
          tls: handle.clientTls,
        });
      },
    });
    this.deps.activity.addTunnel(raw, () => handle.shutdown());
    started();
    handle.start();
    raw.resume();
  }

  private firewall(client: string, port: number): Decision | undefined {
    const backend = parseHostAndPort(this.front.backend as string);
    const verdict = this.deps.rules().firewall.evaluate({ client, host: backend?.host ?? this.front.name, port });
    if (!verdict) return undefined;
    return {
      stage: "firewall",
      action: verdict.action,
      reason: `${verdict.rule.file}:${verdict.rule.line} (${verdict.rule.text})`,
      rule: verdict.rule,
    };
  }

  /** Says why in the protocol's words (not to a client that expects TLS first) and closes. */
  /** Refuses a client in the protocol's words; returns the bytes of the refusal, for its session line. */
  private turnAway(socket: Socket, why: "denied" | "busy" | "down"): number {
    const tlsExpected = this.protocol.implicitTls && tlsVersion(socket) === "none";
    setTimeout(() => socket.destroy(), 2_000).unref();
    if (tlsExpected) {
      socket.destroy();
      return 0;
    }
    const line = `${this.protocol.refusal[why]}\r\n`;
    socket.end(line);
    return Buffer.byteLength(line);
  }

  /** The named pair, or one chosen by SNI; clients without SNI (MTAs often) get this host's name. */
  private serverTls(): ServerTls {
    const certs = this.deps.certs();
    const cert = this.front.tls.cert;
    if (cert) {
      const pair = certs.named(cert);
      if (!pair)
        this.deps.log.warn({ front: this.front.name }, `front ${this.front.name}: certs/${cert}.crt is missing or has errors`);
      return { context: pair?.context, sni: undefined };
    }
    return { context: certs.contextFor(hostname()), sni: (name) => certs.contextFor(name) };
  }
}
