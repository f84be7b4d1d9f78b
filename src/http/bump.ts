import type { Socket } from "node:net";
import { isIP } from "node:net";
import { TLSSocket } from "node:tls";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log/logger.js";
import { type HelloResult, parseClientHello } from "../tls/clienthello.js";
import type { InterceptDecision, InterceptPolicy, PassThrough } from "../tls/intercept-policy.js";
import type { LeafMinter } from "../tls/leaf.js";
import type { Activity } from "./activity.js";
import type { ConnectionContext, HttpExchange, HttpResponse } from "./exchange.js";
import { AdoptingServer } from "./listener.js";
import { writeResponse } from "./respond.js";

export interface BumpDeps {
  minter: LeafMinter;
  policy: InterceptPolicy;
  passThrough: PassThrough;
  /** Where decrypted connections go: the intercept chain's request path. */
  intercepted: Pick<AdoptingServer, "adopt">;
  /** Where refused tunnels' requests go: a server that only ever answers with the refusal. */
  refusals: Refusals;
  handshakeTimeoutMs: number;
  passThroughMs: number;
  log: Logger;
}

export interface BumpHooks {
  /** Not intercepted after all (the server name is on no-intercept): relay, starting with these bytes. */
  relay(initial: Buffer): void;
  /** The client is gone or refused: the tunnel is over. */
  done(reason?: string): void;
}

const ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";

/**
 * TLS termination on a CONNECT tunnel ("bumping", as Squid calls it): answer 200, read the
 * ClientHello (its server name decides, and names the certificate), present a leaf from the office
 * CA, and hand the decrypted connection to an HTTP server, so its requests take the same request
 * path as every other. A client that breaks the handshake after seeing the certificate is
 * remembered and passed through for a while.
 */
export class Bumper {
  constructor(private readonly deps: BumpDeps) {}

  /** Is this a port that carries HTTPS (a refusal there is worth answering over TLS)? */
  tlsPort(port: number): boolean {
    return this.deps.policy.ports.includes(port);
  }

  /** Before answering a CONNECT: is this tunnel one to decrypt (the server name may still say no)? */
  plan(x: HttpExchange): InterceptDecision {
    return this.deps.policy.decide(x.client.address, x.host, x.port);
  }

  /** `own`: a tunnel to gatehouse's own pages, decrypted whatever the interception settings say. */
  intercept(socket: Socket, head: Buffer, x: HttpExchange, hooks: BumpHooks, own = false): void {
    socket.write(ESTABLISHED);
    this.readHello(socket, head, x, hooks, (hello, bytes) => {
      const sni = hello.sni;
      // A name in the ClientHello that differs from the tunnel's is a site the CONNECT was not
      // checked for (domain fronting): not decrypted, and not relayed either.
      if (sni && !isIP(x.host) && sni !== x.host.toLowerCase()) {
        this.deps.log.info(
          { id: x.id, client: x.client.address, host: x.host, sni },
          `tunnel to ${x.host} from ${x.client.address} names ${sni} in its TLS handshake; closed`,
        );
        socket.destroy();
        return hooks.done("server name differs from the CONNECT target");
      }
      const host = sni ?? x.host;
      // Relaying a tunnel to gatehouse itself would only be refused after a 200: it is always answered here.
      const decision = sni && !own ? this.deps.policy.decide(x.client.address, sni, x.port) : { intercept: true, reason: "" };
      if (!decision.intercept) {
        x.decisions.push({
          stage: "intercept",
          action: "allow",
          reason: `not intercepted: ${decision.reason}`,
          rule: decision.rule,
        });
        return hooks.relay(bytes);
      }
      const ctx: ConnectionContext = {
        kind: "intercept",
        listener: "intercept",
        client: x.client,
        local: x.ctx.local,
        scheme: "https",
        authority: { host, port: x.port },
        sni,
      };
      this.terminate(socket, bytes, x, host, hooks, (tls) => this.deps.intercepted.adopt(tls, ctx));
    });
  }

  /**
   * A refused CONNECT, when the office CA exists: decrypted just far enough to answer the refusal
   * page (Squid's bump-on-error), so the user reads who blocked it and whom to ask instead of a
   * browser's "tunnel connection failed". Nothing on this connection is ever forwarded.
   */
  refuse(socket: Socket, head: Buffer, x: HttpExchange, refusal: HttpResponse, hooks: BumpHooks): void {
    socket.write(ESTABLISHED);
    this.readHello(socket, head, x, hooks, (hello, bytes) => {
      const host = hello.sni ?? x.host;
      this.terminate(socket, bytes, x, host, hooks, (tls) => {
        this.deps.refusals.adopt(tls, { ...x.ctx, kind: "intercept", scheme: "https", sni: hello.sni }, refusal);
      });
    });
  }

  private readHello(
    socket: Socket,
    head: Buffer,
    x: HttpExchange,
    hooks: BumpHooks,
    then: (hello: Extract<HelloResult, { kind: "hello" }>, bytes: Buffer) => void,
  ): void {
    let bytes = head;
    const timer = setTimeout(
      () => finish({ kind: "error", reason: `no TLS ClientHello within ${this.deps.handshakeTimeoutMs} ms` }),
      this.deps.handshakeTimeoutMs,
    );
    const onData = (chunk: Buffer) => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
      const r = parseClientHello(bytes);
      if (r.kind !== "more") finish(r);
    };
    const onEnd = () => finish({ kind: "error", reason: "the client closed before its TLS ClientHello" });
    const finish = (r: HelloResult) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      if (r.kind === "hello") {
        socket.pause();
        return then(r, bytes);
      }
      if (r.kind === "error") {
        this.deps.log.info(
          { id: x.id, client: x.client.address, target: x.target, reason: r.reason },
          `tunnel from ${x.client.address} closed: ${r.reason}`,
        );
        socket.destroy();
        hooks.done(r.reason);
      }
    };
    if (bytes.length > 0) {
      const r = parseClientHello(bytes);
      if (r.kind !== "more") return finish(r);
    }
    socket.on("data", onData);
    socket.once("end", onEnd);
  }

  private terminate(
    socket: Socket,
    hello: Buffer,
    x: HttpExchange,
    host: string,
    hooks: BumpHooks,
    secured: (tls: TLSSocket) => void,
  ): void {
    const leaf = this.deps.minter.leaf(host);
    socket.unshift(hello);
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: leaf.context,
      // The decrypted side is served by node:http: HTTP/1.1 only.
      ALPNProtocols: ["http/1.1"],
    });
    let secure = false;
    let failed = false;
    const timer = setTimeout(() => {
      failed = true;
      this.deps.log.info(
        { id: x.id, client: x.client.address, host },
        `TLS handshake with ${x.client.address} for ${host} not finished within ${this.deps.handshakeTimeoutMs} ms; closed`,
      );
      tls.destroy();
    }, this.deps.handshakeTimeoutMs);
    tls.once("secure", () => {
      secure = true;
      clearTimeout(timer);
      secured(tls);
    });
    tls.on("error", (err: NodeJS.ErrnoException) => {
      if (secure || failed) return;
      failed = true;
      clearTimeout(timer);
      if (refusedCertificate(err)) this.remember(x, host, err);
      else
        this.deps.log.info(
          { id: x.id, client: x.client.address, host, err: err.code ?? err.message },
          `TLS handshake with ${x.client.address} for ${host} failed: ${err.code ?? err.message}`,
        );
      socket.destroy();
    });
    tls.once("close", () => {
      clearTimeout(timer);
      // Closed after seeing our certificate, without a word: what pinned apps do.
      if (!secure && !failed) this.remember(x, host, undefined);
      hooks.done();
    });
  }

  private remember(x: HttpExchange, host: string, err: NodeJS.ErrnoException | undefined): void {
    if (!this.deps.passThrough.add(x.client.address, host)) return;
    const why = err ? (err.code ?? err.message) : "closed the connection";
    this.deps.log.warn(
      { client: x.client.address, host, why },
      `${x.client.address} refused the office certificate for ${host} (${why}); its tunnels there pass through undecrypted for ${Math.round(this.deps.passThroughMs / 60_000)} min`,
    );
  }
}

/** A TLS alert about our certificate, or the connection dropped mid-handshake after we sent it. */
function refusedCertificate(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? "";
  return (
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/.test(code) ||
    code === "ECONNRESET"
  );
}

/**
 * The decrypted side of refused tunnels: every request on one gets the refusal the CONNECT got
 * (the block page), then the connection closes. Nothing here is ever forwarded. One per process.
 */
export class Refusals {
  private readonly server: AdoptingServer;
  private readonly pending = new WeakMap<Socket, HttpResponse>();

  constructor(limits: Config["proxy"]["limits"], activity: Activity) {
    const pending = this.pending;
    this.server = new AdoptingServer(
      {
        request(req, res) {
          req.resume();
          const refusal = pending.get(req.socket);
          if (!refusal) return void res.destroy();
          writeResponse(res, { ...refusal, close: true }, limits.sendTimeout);
        },
        connect: (_req, socket) => socket.destroy(),
        clientError: (_err, socket) => socket.destroy(),
      },
      limits,
      activity,
    );
  }

  adopt(socket: Socket, ctx: ConnectionContext, refusal: HttpResponse): void {
    this.pending.set(socket, refusal);
    this.server.adopt(socket, ctx);
  }
}
