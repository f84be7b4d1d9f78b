import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Events } from "../../events/events.js";
import { accessEvent } from "../../http/access-entry.js";
import type { Activity } from "../../http/activity.js";
import { PASSED } from "../../http/chains.js";
import { type ConnectionContext, HttpExchange, type HttpOutcome } from "../../http/exchange.js";
import { forwardRequestHeaders } from "../../http/headers.js";
import type { PageMaker } from "../../http/pages.js";
import { writeRawResponse } from "../../http/respond.js";
import { openTunnel } from "../../http/tunnel.js";
import type { Logger } from "../../log/logger.js";
import type { Handler } from "../../pipeline/stage.js";
import type { WebFront } from "./front.js";

export interface UpgradeDeps {
  /** The front chain's deciding stages (target, route, firewall): the same as for any request. */
  decide: Handler<HttpExchange, HttpOutcome>;
  page: PageMaker;
  via: string;
  idleMs: number;
  connectTimeoutMs: number;
  events: Events;
  log: Logger;
  activity: Activity;
}

/**
 * A WebSocket (or any HTTP/1.1 Upgrade) through a front: decided by the same stages as a request,
 * then relayed byte for byte to a healthy backend, which answers the handshake itself (101). The
 * request carries the forwarding fields like any other.
 */
export function relayUpgrade(
  deps: UpgradeDeps,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  ctx: ConnectionContext,
): void {
  const timing = { start: Date.now(), t0: performance.now() };
  const x = HttpExchange.of(req, ctx, null);
  let status = 101;
  let settled = false;
  const settle = (bytes: number) => {
    if (settled) return;
    settled = true;
    deps.activity.removeTunnel(socket);
    deps.events.access.emit(accessEvent(x, timing, status, bytes));
  };
  deps.activity.addTunnel(socket);
  socket.on("error", () => socket.destroy());
  socket.once("close", () => settle(socket.bytesWritten));
  const refuse = (out: HttpOutcome) => {
    if (out.kind !== "response") return;
    status = out.status;
    writeRawResponse(socket, out);
  };
  deps.decide(x).then(
    (out) => {
      if (out !== PASSED) return refuse(out);
      const front = x.front as WebFront;
      const open = front.openUpgrade(ctx);
      if (!open) return refuse(deps.page(x, front.allDown().page));
      const { backend, socket: server } = open;
      x.log.hierarchy = `FRONT_${front.name}`;
      x.log.peer = backend.label;
      const headers = forwardRequestHeaders(x.rawHeaders, undefined, {
        host: front.backendHost(x),
        via: `${x.httpVersion} ${deps.via}`,
        front: front.forwarding(x),
      });
      // The hop-by-hop fields that make this an upgrade are this hop's to send again.
      headers.push("connection", "upgrade", "upgrade", String(x.headers.upgrade ?? ""));
      const lines = [`${x.method} ${x.url.pathname}${x.url.search} HTTP/1.1`];
      for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
      const requestHead = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
      openTunnel({
        client: socket,
        head: Buffer.concat([requestHead, head]),
        host: backend.url.hostname,
        port: Number(backend.url.port || (backend.url.protocol === "https:" ? 443 : 80)),
        socket: { socket: server, ready: backend.url.protocol === "https:" ? "secureConnect" : "connect" },
        connectTimeoutMs: deps.connectTimeoutMs,
        idleMs: deps.idleMs,
        onEstablished: () => front.backends.succeeded(backend),
        onFailure: (f) => {
          front.backends.failed(backend, f.reason);
          deps.log.warn({ id: x.id, client: x.client.address, front: front.name, backend: backend.label }, f.reason);
          refuse(
            deps.page(x, {
              status: 502,
              title: "Bad gateway",
              message: `The server behind ${front.name} (${backend.label}) failed: ${f.reason}.`,
            }),
          );
        },
        onClose: (r) => settle(r.bytesToClient),
      });
    },
    (err: unknown) => {
      deps.log.error({ id: x.id, client: x.client.address, err }, "upgrade failed inside the front");
      refuse(deps.page(x, { status: 500, title: "Internal error", message: "The front failed while handling this request." }));
    },
  );
}
