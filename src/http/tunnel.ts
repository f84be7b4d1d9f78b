import { connect, type Socket } from "node:net";
import type { LookupFunction } from "../net/lookup.js";

export interface TunnelResult {
  /** Bytes sent to the client, for the access log. */
  bytesToClient: number;
  bytesToServer: number;
}

export type TunnelFailure = { status: 502 | 504; reason: string };

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
  lookup: LookupFunction;
  connectTimeoutMs: number;
  idleMs: number;
  onEstablished: () => void;
  onFailure: (f: TunnelFailure) => void;
  onClose: (r: TunnelResult) => void;
}): Socket {
  const { client } = opts;
  const server = connect({ host: opts.host, port: opts.port, lookup: opts.lookup as never, allowHalfOpen: true });
  let established = false;
  let closed = false;
  const clientStart = client.bytesWritten;
  const connectTimer = setTimeout(() => {
    server.destroy();
    if (!established) opts.onFailure({ status: 504, reason: `${opts.host}:${opts.port} did not accept a connection in time` });
  }, opts.connectTimeoutMs);

  const finish = () => {
    if (closed) return;
    closed = true;
    clearTimeout(connectTimer);
    client.destroy();
    server.destroy();
    opts.onClose({ bytesToClient: client.bytesWritten - clientStart, bytesToServer: server.bytesWritten });
  };

  server.once("connect", () => {
    clearTimeout(connectTimer);
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
    if (!established) {
      clearTimeout(connectTimer);
      const refusedLoopback = (err as { code?: string }).code === "GH_DEST_LOOPBACK";
      opts.onFailure({
        status: 502,
        reason: refusedLoopback ? err.message : `${opts.host}:${opts.port}: ${err.code ?? err.message}`,
      });
      closed = true;
      return;
    }
    finish();
  });
  client.once("error", finish);
  client.once("close", finish);
  server.once("close", () => {
    if (established) finish();
  });
  return server;
}
