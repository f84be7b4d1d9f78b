import type { AccessEvent } from "../events/events.js";
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

  close(): void {
    this.sink?.end?.();
  }
}

function squidLine(e: AccessEvent): string {
  const rule = e.decision?.rule ? ` rule=${e.decision.rule.file}:${e.decision.rule.line}` : "";
  const ms = e.start % 1000;
  const time = `${(e.start - ms) / 1000}.${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}`;
  return `${time} ${String(Math.round(e.durationMs)).padStart(6)} ${e.client} ${e.result}/${e.status} ${e.bytes} ${e.method} ${e.url} ${e.user ?? "-"} ${e.hierarchy}/${e.peer} ${mediaType(e.contentType)}${rule}\n`;
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
    decision: e.decision
      ? {
          stage: e.decision.stage,
          action: e.decision.action,
          reason: e.decision.reason,
          rule: e.decision.rule ? `${e.decision.rule.file}:${e.decision.rule.line}` : undefined,
        }
      : undefined,
  })}\n`;
}
