import { type Action, hasControlBytes, LineDialogue, ReplyQueue, type Side } from "../tcp/dialogue.js";

// The POP3 dialogue of a front (RFC 1939; CAPA and pipelining RFC 2449; STLS RFC 2595; SASL RFC
// 5034), without I/O. The front answers STLS itself; no credential is accepted before TLS; a message
// (RETR, TOP) streams through unread.

export interface Pop3Options {
  clientTls: boolean;
  backendStls: boolean;
}

type Expect = "greeting" | "stls" | "single" | "capa" | "lines" | "message" | "auth" | "quit";

const CREDENTIALS = new Set(["USER", "PASS", "APOP", "AUTH"]);

export class Pop3Dialogue extends LineDialogue {
  private readonly queue = new ReplyQueue<Expect>("greeting");
  private greeting = "";
  /** Inside a multi-line reply being relayed (lines) or rewritten (capa). */
  private multi: { kind: "lines" | "capa"; lines: string[] } | undefined;
  private saslNext = false;

  constructor(private readonly o: Pop3Options) {
    super(o.clientTls, { closed: "-ERR [SYS/TEMP] The mail server closed the connection", tooMany: "-ERR Too many errors" });
  }

  get holdClient(): boolean {
    return this.opening || this.tlsStarting || this.queue.awaits(["auth"]);
  }

  passed(from: Side): Action[] {
    return from === "backend" ? this.flushLocal() : [];
  }

  protected backendSecured(): Action[] {
    return this.open();
  }

  protected fromClient(line: string): Action[] {
    if (this.saslNext) {
      this.saslNext = false;
      this.queue.expect("auth");
      return [{ send: "backend", line }];
    }
    if (hasControlBytes(line)) {
      return this.garbage(() => this.local("-ERR Syntax error: control characters in the command"));
    }
    const [verb = "", ...args] = line.split(" ");
    const cmd = verb.toUpperCase();
    if (cmd === "STLS") {
      if (this.clientTls) return this.local("-ERR TLS is active already");
      this.queue.startTls("single");
      return this.flushLocal();
    }
    if (CREDENTIALS.has(cmd) && !this.clientTls)
      return this.local("-ERR [AUTH] Log in after STLS: credentials never cross in clear");
    switch (cmd) {
      case "CAPA":
        return this.queue.forward(line, "capa");
      case "RETR":
      case "TOP":
        return this.queue.forward(line, "message");
      case "LIST":
      case "UIDL":
        return this.queue.forward(line, args.filter(Boolean).length === 0 ? "lines" : "single");
      case "AUTH":
        return this.queue.forward(line, args.filter(Boolean).length === 0 ? "lines" : "auth");
      case "QUIT":
        this.quitting = true;
        return this.queue.forward(line, "quit");
      default:
        return this.queue.forward(line, "single");
    }
  }

  private local(reply: string): Action[] {
    this.queue.local("single", reply);
    return this.flushLocal();
  }

  /** The front's own replies at the head of the queue, once no multi-line reply is being relayed. */
  private flushLocal(): Action[] {
    if (this.multi) return [];
    return this.queue.flushLocal("+OK Begin TLS negotiation", () => {
      this.tlsStarting = true;
    });
  }

  protected fromBackend(line: string): Action[] {
    if (this.multi) {
      if (line !== ".") {
        if (this.multi.kind === "lines") return [{ send: "client", line }];
        if (this.multi.lines.length > 200)
          return [{ close: "error", reason: "the backend sent a CAPA list of more than 200 lines" }];
        this.multi.lines.push(line);
        return [];
      }
      const capa = this.multi.kind === "capa" ? this.capabilities(this.multi.lines) : [];
      this.multi = undefined;
      return [...capa.map((l) => send(l)), send("."), ...this.flushLocal()];
    }
    const p = this.queue.shift();
    if (!p) return [send(line)];
    const ok = line.startsWith("+OK");
    if (this.opening) return this.openingReply(p.expect, ok, line);
    if (p.expect === "auth" && line.startsWith("+ ")) {
      this.saslNext = true;
      return [send(line)];
    }
    if (ok && (p.expect === "capa" || p.expect === "lines")) {
      this.multi = { kind: p.expect, lines: [] };
      return [send(line)];
    }
    if (ok && p.expect === "message") return [send(line), { passDot: "backend" }];
    return [send(line), ...this.flushLocal()];
  }

  /** The backend's CAPA list as the client should see it: TLS is the front's, credentials only over it. */
  private capabilities(lines: string[]): string[] {
    const kept = lines.filter((l) => {
      const word = (l.split(" ")[0] ?? "").toUpperCase();
      if (word === "STLS") return false;
      if ((word === "USER" || word === "SASL") && !this.clientTls) return false;
      return true;
    });
    if (!this.clientTls) kept.push("STLS");
    return kept;
  }

  private openingReply(expect: Expect, ok: boolean, line: string): Action[] {
    if (!ok) {
      return [
        { send: "client", line: "-ERR [SYS/TEMP] The mail server is not available; try again later" },
        { close: "error", reason: `backend refused ${expect === "stls" ? "STLS" : "the session"}: ${line.slice(0, 200)}` },
      ];
    }
    if (expect === "greeting") {
      this.greeting = line;
      if (!this.o.backendStls) return this.open();
      this.queue.expect("stls");
      return [{ send: "backend", line: "STLS" }];
    }
    return [{ tls: "backend" }];
  }

  private open(): Action[] {
    this.opening = false;
    return [send(this.greeting)];
  }
}

function send(line: string): Action {
  return { send: "client", line };
}
