import type { ServerResponse } from "node:http";
import type { LogFilter } from "./stats/recent.js";
import type { Stats } from "./stats/stats.js";

/** Live pages open at once; past it a new one gets 503 (each costs a socket and a JSON a second). */
const MAX_STREAMS = 32;
/** A page that stops reading is cut off once this much waits for it. */
const MAX_QUEUED_BYTES = 1024 * 1024;
/** Lines sent to one live log page per second at most (the newest win). */
const LINES_PER_TICK = 200;
const HEARTBEAT_MS = 15_000;

interface Stream {
  res: ServerResponse;
  kind: "overview" | "logs";
  filter: LogFilter;
  lastSeq: number;
  lastWrite: number;
}

/**
 * Server-Sent Events for the live pages: once a second the dashboard's figures (made once for
 * every page that watches) and, for log pages, the new lines that match each page's search.
 */
export class Live {
  private readonly streams = new Set<Stream>();

  constructor(
    private readonly stats: Stats,
    private readonly overview: () => unknown,
  ) {}

  /** Takes over a response for a stream; false when too many are open. */
  open(res: ServerResponse, kind: Stream["kind"], filter: LogFilter = {}): boolean {
    if (this.streams.size >= MAX_STREAMS) return false;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      connection: "keep-alive",
    });
    const s: Stream = { res, kind, filter, lastSeq: this.stats.recent.lastSeq, lastWrite: Date.now() };
    this.streams.add(s);
    res.on("close", () => this.streams.delete(s));
    // A first message at once, so the page shows figures without waiting for the tick.
    if (kind === "overview") this.send(s, "overview", JSON.stringify(this.overview()));
    else res.write("retry: 2000\n\n");
    return true;
  }

  tick(): void {
    if (this.streams.size === 0) return;
    let overview: string | undefined;
    const now = Date.now();
    for (const s of this.streams) {
      if (s.kind === "overview") {
        overview ??= JSON.stringify(this.overview());
        this.send(s, "overview", overview);
      } else {
        const lines = this.stats.recent.since(s.lastSeq, s.filter, LINES_PER_TICK);
        s.lastSeq = this.stats.recent.lastSeq;
        if (lines.length > 0) this.send(s, "lines", JSON.stringify(lines));
        else if (now - s.lastWrite >= HEARTBEAT_MS) this.write(s, ": keep-alive\n\n");
      }
    }
  }

  private send(s: Stream, event: string, data: string): void {
    this.write(s, `event: ${event}\ndata: ${data}\n\n`);
  }

  private write(s: Stream, text: string): void {
    if (s.res.writableLength > MAX_QUEUED_BYTES) {
      this.streams.delete(s);
      s.res.destroy();
      return;
    }
    s.lastWrite = Date.now();
    s.res.write(text);
  }

  close(): void {
    for (const s of this.streams) s.res.end();
    this.streams.clear();
  }
}
