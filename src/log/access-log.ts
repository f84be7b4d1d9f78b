import pino from "pino";
import type { Decision } from "../pipeline/stage.js";

export interface AccessEntry {
  /** Epoch ms when the request arrived. */
  start: number;
  durationMs: number;
  client: string;
  /** Squid's result code: TCP_MISS, TCP_HIT, TCP_DENIED, TCP_TUNNEL, NONE_NONE... */
  result: string;
  status: number;
  bytes: number;
  method: string;
  url: string;
  user?: string;
  hierarchy: string;
  peer: string;
  contentType?: string;
  id: string;
  decision?: Decision;
}

type Sink = { write(line: string): unknown; flushSync?(): void; end?(): void };

/**
 * One line per request, in Squid's native access.log layout (so existing log tools read it) or as
 * JSON. Writes go through pino's buffered destination, so a slow disk never blocks a response.
 */
export class AccessLog {
  private constructor(
    private readonly sink: Sink | undefined,
    private readonly format: "squid" | "json",
  ) {}

  static open(file: string, format: "squid" | "json"): AccessLog {
    if (file === "") return new AccessLog(undefined, format);
    const dest = file === "-" ? 1 : file;
    // Lines are written in batches of 8 KiB, and at least every 250 ms so `tail -f` stays live:
    // a write per line measurably cost the proxy's throughput.
    const boom = pino.destination({ dest, sync: false, minLength: 8 * 1024, mkdir: true });
    const timer = setInterval(() => {
      try {
        boom.flush();
      } catch {
        // Not open yet, or a write in flight: the next tick flushes.
      }
    }, 250);
    timer.unref();
    return new AccessLog(
      {
        write: (l) => boom.write(l),
        flushSync: () => boom.flushSync(),
        end: () => {
          clearInterval(timer);
          boom.end();
        },
      },
      format,
    );
  }

  /** For tests: lines go to the given function. */
  static toFunction(fn: (line: string) => void, format: "squid" | "json"): AccessLog {
    return new AccessLog({ write: fn }, format);
  }

  write(e: AccessEntry): void {
    if (!this.sink) return;
    this.sink.write(this.format === "json" ? jsonLine(e) : squidLine(e));
  }

  close(): void {
    try {
      this.sink?.flushSync?.();
    } catch {
      // A sink that is not ready yet has nothing to flush.
    }
    this.sink?.end?.();
  }
}

function squidLine(e: AccessEntry): string {
  const rule = e.decision?.rule ? ` rule=${e.decision.rule.file}:${e.decision.rule.line}` : "";
  return `${(e.start / 1000).toFixed(3)} ${String(Math.round(e.durationMs)).padStart(6)} ${e.client} ${e.result}/${e.status} ${e.bytes} ${e.method} ${e.url} ${e.user ?? "-"} ${e.hierarchy}/${e.peer} ${e.contentType ?? "-"}${rule}\n`;
}

function jsonLine(e: AccessEntry): string {
  return `${JSON.stringify({
    time: new Date(e.start).toISOString(),
    id: e.id,
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
