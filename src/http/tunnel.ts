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
 * Relays bytes between a client and host:port after CONNECT. Each direction is a pipe with
 * back-pressure; a FIN from one side is passed on as a FIN to the other (half-close), and the tunnel
 * ends when both directions have ended, on any error, or after `idleMs` with no bytes either way.
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
  const server =
    opts.socket?.socket ?? connect({ host: opts.host, port: opts.port, lookup: opts.lookup as never, allowHalfOpen: true });
  const target = `${opts.host}:${opts.port}`;
  let established = false;
  let closed = false;
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
    client.destroy();
    server.destroy();
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
    client.setTimeout(opts.idleMs, finish);
    server.setTimeout(opts.idleMs, finish);
    client.pipe(server);
    server.pipe(client);
    let ended = 0;
    const halfDone = () => {
      ended++;
      if (ended === 2) finish();
    };
    // Each pipe ends its destination when its source sends FIN; once both writable sides have
    // flushed and finished, nothing more can flow either way.
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
