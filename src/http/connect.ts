import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Events } from "../events/events.js";
import type { Logger } from "../log/logger.js";
import type { LookupFunction } from "../net/lookup.js";
import type { SelfEndpoints } from "../net/self.js";
import type { Handler } from "../pipeline/stage.js";
import { accessEvent } from "./access-entry.js";
import type { Activity } from "./activity.js";
import { type Client, type ConnectionContext, HttpExchange, type HttpOutcome, type HttpResponse } from "./exchange.js";
import type { PageMaker } from "./pages.js";
import { writeRawResponse } from "./respond.js";
import { openTunnel } from "./tunnel.js";

export interface TunnelSettings {
  /** The lookup for a client's tunnels: loopback results only for loopback clients. */
  lookup: (client: Client) => LookupFunction;
  connectTimeoutMs: number;
  idleMs: number;
  /** gatehouse's own listeners: a name that resolves to one of them is refused after connecting. */
  self: SelfEndpoints;
}

interface ConnectDeps {
  chain: Handler<HttpExchange, HttpOutcome>;
  page: PageMaker;
  tunnel: TunnelSettings;
  events: Events;
  log: Logger;
  activity: Activity;
}

/**
 * CONNECT: the same chain as every request decides (target, self, access, policy); a tunnel outcome
 * opens a byte relay to the target, any response is written on the raw socket and the connection
 * closed. One access event when the tunnel or the refusal is over.
 */
export function handleConnect(
  deps: ConnectDeps,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  ctx: ConnectionContext,
): void {
  const timing = { start: Date.now(), t0: performance.now() };
  const x = new HttpExchange({
    ctx,
    method: "CONNECT",
    target: req.url ?? "",
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    httpVersion: req.httpVersion,
    body: null,
  });
  const bytesBefore = socket.bytesWritten;
  let status = 200;
  let settled = false;
  const settle = (bytes: number) => {
    if (settled) return;
    settled = true;
    deps.activity.end();
    deps.events.access.emit(accessEvent(x, timing, status, bytes));
  };
  const respond = (out: HttpResponse) => {
    status = out.status;
    writeRawResponse(socket, out);
    settle(socket.bytesWritten - bytesBefore);
  };
  deps.activity.begin();
  socket.on("error", () => socket.destroy());
  socket.once("close", () => {
    x.abort.fire();
    settle(socket.bytesWritten - bytesBefore);
  });
  deps.chain(x).then(
    (outcome) => {
      if (socket.destroyed) return settle(0);
      if (outcome.kind === "response") return respond(outcome);
      x.log.hierarchy = "HIER_DIRECT";
      x.log.peer = outcome.host;
      const t = deps.tunnel;
      deps.activity.addTunnel(socket);
      openTunnel({
        client: socket,
        head,
        host: outcome.host,
        port: outcome.port,
        lookup: t.lookup(x.client),
        connectTimeoutMs: t.connectTimeoutMs,
        idleMs: t.idleMs,
        refuse: (address, port) =>
          t.self.matches(address, port) ? `${x.host}:${x.port} is one of gatehouse's own listeners` : undefined,
        onEstablished: () => socket.write("HTTP/1.1 200 Connection Established\r\n\r\n"),
        onFailure: (f) => {
          deps.activity.removeTunnel(socket);
          deps.log.warn({ id: x.id, client: x.client.address, target: x.target }, f.reason);
          x.log.cache = f.status === 403 ? "TCP_DENIED" : "NONE_NONE";
          if (f.decision) x.decisions.push(f.decision);
          respond(
            deps.page(x, {
              status: f.status,
              title: f.title,
              message: f.message,
              rule: f.decision?.rule,
            }),
          );
        },
        onClose: (r) => {
          deps.activity.removeTunnel(socket);
          settle(r.bytesToClient);
        },
      });
    },
    (err: unknown) => {
      deps.log.error({ id: x.id, client: x.client.address, target: x.target, err }, "CONNECT failed inside the proxy");
      respond(deps.page(x, { status: 500, title: "Internal error", message: "The proxy failed while handling this request." }));
    },
  );
}
