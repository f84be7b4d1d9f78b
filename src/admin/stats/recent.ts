/** One access or query line as the logs page shows it. */
export interface LogLine {
  /** Increasing number, for paging and the live tail. */
  seq: number;
  time: number;
  /** A request, a DNS query, or a connection through an FTP or mail front. */
  kind: "http" | "dns" | "session";
  client: string;
  /** The host a request was for, the name a query asked, or the front a session went through. */
  name: string;
  /** "GET http://example.com/", "CONNECT example.com:443", the query type, or "SMTP smtp://mx → 10.0.0.25:25". */
  request: string;
  /** TCP_MISS, TCP_DENIED... for requests; cached, forwarded, blocked... for queries; SESSION_CLOSED... */
  result: string;
  /** HTTP status, the DNS rcode name, or a session's TLS version ("none" without). */
  status: string;
  /** The deciding rule as "block/ads.txt:2", and its text. */
  rule?: string;
  ruleText?: string;
  /** A rule blocked or denied it: the page offers "allow this name". */
  blocked: boolean;
  ms: number;
  bytes?: number;
}

export interface LogFilter {
  /** An address, or its beginning ("192.168.1."). */
  client?: string;
  /** Part of the name, any case. */
  name?: string;
  /** A result or status ("TCP_DENIED", "blocked", "NXDOMAIN", "404"), or "blocked" for every blocked line. */
  result?: string;
  /** Part of the rule's file:line or text. */
  rule?: string;
  /** Lines older than this seq (paging back). */
  before?: number;
}

/** Bookkeeping of one line besides its strings (object, numbers, array slot). */
const LINE_OVERHEAD = 160;

function lineBytes(l: LogLine): number {
  // Two bytes a character: the worst case of V8's string representations.
  return (
    LINE_OVERHEAD +
    2 *
      (l.client.length +
        l.name.length +
        l.request.length +
        l.result.length +
        l.status.length +
        (l.rule?.length ?? 0) +
        (l.ruleText?.length ?? 0))
  );
}

/**
 * The recent access and query lines, newest last, bounded in bytes: each new line pushes out the
 * oldest ones until the total fits. Searching walks back from the newest, so a search for the
 * latest blocked lines stops as soon as it has enough.
 */
export class RecentLog {
  private lines: LogLine[] = [];
  private head = 0;
  private bytes = 0;
  private seq = 0;

  constructor(private maxBytes: number) {}

  /** A reload may change admin.recentLog: the next push trims to the new bound. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
  }

  push(line: Omit<LogLine, "seq">): void {
    const l = line as LogLine;
    l.seq = ++this.seq;
    this.lines.push(l);
    this.bytes += lineBytes(l);
    while (this.bytes > this.maxBytes && this.head < this.lines.length) {
      this.bytes -= lineBytes(this.lines[this.head] as LogLine);
      this.lines[this.head++] = undefined as unknown as LogLine;
    }
    // Drop the emptied front now and then, in one copy, rather than shifting on every line.
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }

  get size(): number {
    return this.lines.length - this.head;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Up to `limit` lines that match, newest first. */
  search(f: LogFilter, limit: number): LogLine[] {
    const match = matcher(f);
    const out: LogLine[] = [];
    for (let i = this.lines.length - 1; i >= this.head && out.length < limit; i--) {
      const l = this.lines[i] as LogLine;
      if (f.before !== undefined && l.seq >= f.before) continue;
      if (match(l)) out.push(l);
    }
    return out;
  }

  /** Lines newer than `seq` that match, oldest first (the live tail), at most `limit` of the newest. */
  since(seq: number, f: LogFilter, limit: number): LogLine[] {
    const match = matcher(f);
    const out: LogLine[] = [];
    for (let i = this.lines.length - 1; i >= this.head && out.length < limit; i--) {
      const l = this.lines[i] as LogLine;
      if (l.seq <= seq) break;
      if (match(l)) out.push(l);
    }
    return out.reverse();
  }
}

function matcher(f: LogFilter): (l: LogLine) => boolean {
  const client = f.client?.trim();
  const name = f.name?.trim().toLowerCase();
  const result = f.result?.trim().toLowerCase();
  const rule = f.rule?.trim().toLowerCase();
  return (l) =>
    (!client || l.client === client || l.client.startsWith(client)) &&
    (!name || l.name.toLowerCase().includes(name)) &&
    (!result ||
      l.result.toLowerCase() === result ||
      l.status.toLowerCase() === result ||
      (result === "blocked" && l.blocked) ||
      (result === "allowed" && !l.blocked)) &&
    (!rule || `${l.rule ?? ""} ${l.ruleText ?? ""}`.toLowerCase().includes(rule));
}
