import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Config } from "../config/schema.js";
import type { Events } from "../events/events.js";
import type { Logger } from "../log/logger.js";
import type { Handler } from "../pipeline/stage.js";
import { accessEvent } from "./access-entry.js";
import type { Activity } from "./activity.js";
import type { Bumper } from "./bump.js";
import { StoredHit } from "./cache/entry.js";
import { handleConnect, type TunnelSettings } from "./connect.js";
import { type ConnectionContext, HttpExchange, type HttpOutcome, type HttpResponse, nextRequestId } from "./exchange.js";
import type { HttpHandlers } from "./listener.js";
import type { PageMaker } from "./pages.js";
import { statusText } from "./pages.js";
import { type Sent, writeResponse } from "./respond.js";
import { UpstreamError } from "./upstream.js";

export interface ServiceDeps {
  chain: Handler<HttpExchange, HttpOutcome>;
  page: PageMaker;
  limits: Config["proxy"]["limits"];
  /** How CONNECT tunnels are opened; without it (fronts) a CONNECT is refused with 405. */
  tunnel?: TunnelSettings;
  /** TLS termination for CONNECT, when the office CA exists (known once the generation is prepared). */
  bumper?: () => Bumper | undefined;
  /** Protocol upgrades (WebSocket) for fronts; elsewhere they are refused. */
  upgrade?: HttpHandlers["upgrade"];
  events: Events;
  log: Logger;
  activity: Activity;
}

/**
 * The one request path behind every HTTP listener: an exchange from the request and its connection,
 * the listener kind's chain, the outcome written back, one access event. Forward, intercepted and
 * front requests differ only in the chain and the connection context they arrive with.
 */
export class HttpService implements HttpHandlers {
  constructor(private readonly deps: ServiceDeps) {}

  request(req: IncomingMessage, res: ServerResponse, ctx: ConnectionContext): void {
    const { deps } = this;
    const timing = { start: Date.now(), t0: performance.now() };
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    // An HTTP/2 stream shares its connection with others: its bytes are counted as they are written.
    const sent: Sent | undefined = (req as { stream?: unknown }).stream !== undefined ? { bytes: 0 } : undefined;
    const body = hasBody(req) ? req : null;
    const x = HttpExchange.of(req, ctx, body, res);
    deps.activity.begin();
    res.once("close", () => {
      if (!res.writableFinished) x.abort.fire();
      deps.activity.end();
      if (deps.events.access.active)
        deps.events.access.emit(accessEvent(x, timing, res.statusCode, sent ? sent.bytes : socket.bytesWritten - bytesBefore));
    });
    if (body) {
      body.setTimeout(Math.max(deps.limits.idleTimeout, 60_000), () => body.destroy(new Error("request body stalled")));
      body.once("end", () => socket.setTimeout(0));
    }
    deps.chain(x).then(
      (out) => {
        if (out.kind !== "response") throw new Error(`a ${out.kind} outcome for a plain request`);
        this.finish(req, res, x, out, sent);
      },
      (err: unknown) => {
        if (x.abort.aborted) return;
        this.finish(req, res, x, this.failure(x, err), sent);
      },
    );
  }

  private finish(req: IncomingMessage, res: ServerResponse, x: HttpExchange, out: HttpResponse, sent: Sent | undefined): void {
    // A body nobody read (the request was answered here): drain it so the connection can go on.
    if (!x.bodyTaken) req.resume();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    x.log.contentType = contentTypeOf(out);
    if (writeResponse(res, out, this.deps.limits.sendTimeout, sent)) return;
    this.deps.log.warn(
      { id: x.id, client: x.client.address, url: x.target },
      "origin sent a response header that cannot be relayed",
    );
    const page = this.deps.page(x, {
      status: 502,
      title: "Bad gateway",
      message: `The server at ${x.url?.host ?? x.host} sent a malformed response header.`,
    });
    x.log.contentType = contentTypeOf(page);
    writeResponse(res, page, this.deps.limits.sendTimeout, sent);
  }

  private failure(x: HttpExchange, err: unknown): HttpResponse {
    if (err instanceof UpstreamError) {
      if (err.decision) {
        // Refused before any connection (a DNS block, a loopback destination): a denial, not a miss.
        x.decisions.push(err.decision);
        x.log.cache = "TCP_DENIED";
      } else {
        x.log.hierarchy = "HIER_DIRECT";
        x.log.peer = x.host;
      }
      this.deps.log.warn({ id: x.id, client: x.client.address, url: x.target, status: err.page.status }, err.message);
      return this.deps.page(x, err.page);
    }
    this.deps.log.error({ id: x.id, client: x.client.address, url: x.target, err }, "request failed inside the proxy");
    return this.deps.page(x, {
      status: 500,
      title: "Internal error",
      message: "The proxy failed while handling this request; the error is in its log.",
    });
  }

  connect(req: IncomingMessage, socket: Socket, head: Buffer, ctx: ConnectionContext): void {
    const tunnel = this.deps.tunnel;
    if (!tunnel) {
      socket.end(
        "HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
      );
      return;
    }
    handleConnect({ ...this.deps, tunnel }, req, socket, head, ctx);
  }

  get upgrade(): HttpHandlers["upgrade"] {
    return this.deps.upgrade;
  }

  clientError(err: NodeJS.ErrnoException, socket: Socket, ctx: ConnectionContext): void {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "request header section too large"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "ERR_HTTP_HEADERS_TIMEOUT"
          ? [408, "request headers not received in time"]
          : [400, `malformed request (${err.code ?? "parse error"}: ${err.message})`];
    const client = ctx.client.address;
    this.deps.log.info({ client, code: err.code }, `refused a request from ${client}: ${reason}`);
    this.deps.events.access.emit({
      start: Date.now(),
      durationMs: 0,
      client,
      listener: ctx.listener,
      result: "NONE_NONE",
      status,
      bytes: 0,
      method: "-",
      url: "error:invalid-request",
      hierarchy: "HIER_NONE",
      peer: "-",
      id: nextRequestId(),
    });
    const body = `${status} ${statusText(status)}: ${reason}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}

/**
 * An HTTP/2 request as the stages read every request: its pseudo-headers dropped, :authority as
 * the Host (RFC 9113 §8.3.1), the rest as sent.
 */
function hasBody(req: IncomingMessage): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const cl = req.headers["content-length"];
  return cl !== undefined && cl !== "0";
}

function contentTypeOf(out: HttpResponse): string | undefined {
  // Reading a stored hit's `flat` would make the list its prepared head spares it.
  if (out instanceof StoredHit) return out.contentType;
  if (out.flat) {
    const flat = out.flat;
    for (let i = 0; i < flat.length; i += 2) if (flat[i] === "content-type") return flat[i + 1];
    return undefined;
  }
  for (const [n, v] of out.headers) if (n === "content-type") return Array.isArray(v) ? v[0] : v;
  return undefined;
}
