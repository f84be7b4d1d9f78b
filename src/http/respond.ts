import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type BodyConsumer, PushBody } from "./body.js";
import { StoredHit } from "./cache/entry.js";
import { flattenHeaders, type HttpResponse } from "./exchange.js";
import { statusText } from "./pages.js";
import { setPreparedHead } from "./prepared-head.js";

/**
 * Writes a response to the client. A client that stops reading is cut off once it has not taken a
 * byte for `sendTimeoutMs` (the origin connection is released through the exchange's abort, which
 * fires when the response closes unfinished); without this, one stalled client pins an origin
 * connection and its buffers for as long as it likes.
 *
 * Returns false if node refused the headers (an origin header with bad characters); nothing was
 * written then, and the caller answers with an error page instead. `sent` counts the body bytes
 * handed to the response, for HTTP/2, where there is no socket of the request's own to count them.
 */
export function writeResponse(res: ServerResponse, out: HttpResponse, sendTimeoutMs: number, sent?: Sent): boolean {
  if (out.close) res.shouldKeepAlive = false;
  if (!setStoredHead(res, out)) {
    const flat = out.flat ?? flattenHeaders(out.headers);
    try {
      // HTTP/2 has no reason phrase (RFC 9113 §8.3.2); node warns if one is given.
      if ((res as { stream?: unknown }).stream !== undefined) res.writeHead(out.status, flat);
      else res.writeHead(out.status, out.statusText, flat);
    } catch {
      if (out.body instanceof PushBody) out.body.abort(new Error("unrelayable response header"));
      return false;
    }
  }
  const body = out.body;
  if (sent && Buffer.isBuffer(body)) sent.bytes += body.length;
  if (body === null || (Buffer.isBuffer(body) && body.length <= SLICE)) {
    // Small enough for the socket buffers: a client that never reads costs nothing beyond them.
    res.end(body ?? undefined);
    if (res.writableNeedDrain) new SendTimer(res, sendTimeoutMs).start();
    return true;
  }
  if (Buffer.isBuffer(body)) new BufferSink(res, body, sendTimeoutMs).pump();
  else body.attach(new ResponseSink(res, body, sendTimeoutMs, sent));
  return true;
}

/**
 * A stored hit to an HTTP/1.1 client: its prepared header block, with this request's fields added.
 * False when writeHead must write the header (HTTP/2 and HTTP/1.0 clients among others).
 */
function setStoredHead(res: ServerResponse, out: HttpResponse): boolean {
  if (!(out instanceof StoredHit)) return false;
  const req = res.req;
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return false;
  const lines = out.preparedLines();
  return lines !== undefined && setPreparedHead(res, out.head, lines);
}

export interface Sent {
  bytes: number;
}

/** Stored bodies are written in slices of this size, so a slow reader's progress is seen. */
const SLICE = 256 * 1024;

/** Cuts a response off when the client has not drained it in time. */
class SendTimer {
  private timer: NodeJS.Timeout | undefined;
  private watching = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly ms: number,
  ) {}

  /** Arms the timer; the caller stops it when the client drains. */
  start(): void {
    if (this.timer || this.ms <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.res.destroy(new Error(`client did not read the response for ${this.ms} ms`));
    }, this.ms);
    this.timer.unref();
    if (this.watching) return;
    this.watching = true;
    const stop = () => this.stop();
    this.res.once("finish", stop);
    this.res.once("close", stop);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Streams a pushed body into the response with back-pressure: one object per response, no closures. */
class ResponseSink implements BodyConsumer {
  private readonly timer: SendTimer;

  constructor(
    private readonly res: ServerResponse,
    private readonly body: PushBody,
    sendTimeoutMs: number,
    private readonly sent: Sent | undefined,
  ) {
    this.timer = new SendTimer(res, sendTimeoutMs);
    res.on("drain", this.onDrain);
  }

  private readonly onDrain = () => {
    this.timer.stop();
    this.body.resume();
  };

  data(chunk: Buffer): boolean {
    if (this.sent) this.sent.bytes += chunk.length;
    if (this.res.write(chunk)) return true;
    this.timer.start();
    return false;
  }

  end(): void {
    this.res.off("drain", this.onDrain);
    this.res.end();
    if (!this.res.writableFinished && this.res.writableNeedDrain) this.timer.start();
  }

  // The origin died mid-body: close the client connection so the body never looks complete.
  error(): void {
    this.res.off("drain", this.onDrain);
    this.timer.stop();
    this.res.destroy();
  }
}

/** A large stored body written slice by slice as the client takes it. */
class BufferSink {
  private offset = 0;
  private readonly timer: SendTimer;

  constructor(
    private readonly res: ServerResponse,
    private readonly body: Buffer,
    sendTimeoutMs: number,
  ) {
    this.timer = new SendTimer(res, sendTimeoutMs);
  }

  readonly pump = (): void => {
    this.timer.stop();
    const { res, body } = this;
    while (this.offset < body.length && !res.destroyed) {
      const end = Math.min(body.length, this.offset + SLICE);
      const slice = body.subarray(this.offset, end);
      this.offset = end;
      if (end === body.length) {
        res.end(slice);
        if (res.writableNeedDrain) this.timer.start();
        return;
      }
      if (!res.write(slice)) {
        this.timer.start();
        res.once("drain", this.pump);
        return;
      }
    }
  };
}

/** A response written by hand on a raw socket (CONNECT refusals), then the connection closed. */
export function writeRawResponse(socket: Socket, out: HttpResponse): void {
  const lines = [`HTTP/1.1 ${out.status} ${statusText(out.status)}`];
  for (const [name, value] of out.headers) lines.push(`${name}: ${Array.isArray(value) ? value.join(", ") : value}`);
  lines.push("connection: close", "", "");
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n")), Buffer.isBuffer(out.body) ? out.body : Buffer.alloc(0)]));
}
