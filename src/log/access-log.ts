import type { AccessEvent, SessionEvent } from "../events/events.js";
import type { Decision } from "../pipeline/stage.js";
import { type LineSink, openLineSink } from "./sink.js";

/**
 * One line per request, in Squid's native access.log layout (so existing log tools read it) or as
 * JSON. Lines go through a buffered sink (sink.ts), so a slow disk never blocks a response.
 */
export class AccessLog {
  private constructor(
    private readonly sink: LineSink | undefined,
    private readonly format: "squid" | "json",
  ) {}

  static open(file: string, format: "squid" | "json"): AccessLog {
    return new AccessLog(openLineSink(file), format);
  }

  /** For tests: lines go to the given function. */
  static toFunction(fn: (line: string) => void, format: "squid" | "json"): AccessLog {
    return new AccessLog({ write: fn }, format);
  }

  write(e: AccessEvent): void {
    if (!this.sink) return;
    this.sink.write(this.format === "json" ? jsonLine(e) : squidLine(e));
  }

  /** One line per connection through an FTP or mail front, in the same layout. */
  writeSession(e: SessionEvent): void {
    if (!this.sink) return;
    this.sink.write(this.format === "json" ? jsonSessionLine(e) : squidSessionLine(e));
  }

  /** SIGUSR1: after logrotate moved the file, later lines go to a new one at the same path. */
  reopen(): void {
    this.sink?.reopen?.();
  }

  close(): void {
    this.sink?.end?.();
  }
}

function squidTime(start: number): string {
  const ms = start % 1000;
  return `${(start - ms) / 1000}.${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}`;
}

function squidLine(e: AccessEvent): string {
  const rule = e.decision?.rule ? ` rule=${e.decision.rule.file}:${e.decision.rule.line}` : "";
  return `${squidTime(e.start)} ${String(Math.round(e.durationMs)).padStart(6)} ${e.client} ${e.result}/${e.status} ${e.bytes} ${e.method} ${e.url} ${e.user ?? "-"} ${e.hierarchy}/${e.peer} ${mediaType(e.contentType)}${rule}\n`;
}

/** The media type without parameters: log tools split Squid lines on spaces. */
function mediaType(contentType: string | undefined): string {
  if (!contentType) return "-";
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().replace(/\s+/g, "") || "-";
}

function jsonLine(e: AccessEvent): string {
  return `${JSON.stringify({
    time: new Date(e.start).toISOString(),
    id: e.id,
    listener: e.listener,
    client: e.client,
    method: e.method,
    url: e.url,
    status: e.status,
    bytes: e.bytes,
    durationMs: Math.round(e.durationMs * 10) / 10,
    result: e.result,
    hierarchy: e.hierarchy,
    peer: e.peer,
    contentType: e.contentType,
    user: e.user,
    decision: decisionJson(e.decision),
  })}\n`;
}

/**
 * A front session in Squid's columns, so the same tools read it: the result is SESSION_ and how it
 * ended, the status 000, the bytes both ways, the protocol as the method, PROTOCOL://front as the
 * URL, FRONT/backend as the peer; then the client's TLS version and the bytes each way.
 */
/** A session's ending in the access log's words: SESSION_CLOSED, SESSION_BACKEND_DOWN... */
export function sessionResult(e: SessionEvent): string {
  return `SESSION_${e.result.toUpperCase().replace(/-/g, "_")}`;
}

function squidSessionLine(e: SessionEvent): string {
  const rule = e.decision?.rule ? ` rule=${e.decision.rule.file}:${e.decision.rule.line}` : "";
  const result = sessionResult(e);
  return `${squidTime(e.start)} ${String(Math.round(e.durationMs)).padStart(6)} ${e.client} ${result}/000 ${e.bytesIn + e.bytesOut} ${e.protocol.toUpperCase()} ${e.protocol}://${e.front} - FRONT/${e.backend} - tls=${e.tls} in=${e.bytesIn} out=${e.bytesOut}${rule}\n`;
}

function jsonSessionLine(e: SessionEvent): string {
  return `${JSON.stringify({
    time: new Date(e.start).toISOString(),
    listener: "front",
    front: e.front,
    protocol: e.protocol,
    client: e.client,
    backend: e.backend,
    bytesIn: e.bytesIn,
    bytesOut: e.bytesOut,
    durationMs: Math.round(e.durationMs),
    tls: e.tls,
    result: e.result,
    detail: e.detail,
    decision: decisionJson(e.decision),
  })}\n`;
}

/** The deciding stage of a JSON line, its rule as file:line. */
function decisionJson(d: Decision | undefined): object | undefined {
  if (!d) return undefined;
  return { stage: d.stage, action: d.action, reason: d.reason, rule: d.rule ? `${d.rule.file}:${d.rule.line}` : undefined };
}
