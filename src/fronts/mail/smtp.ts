import { isIP } from "node:net";
import { type Action, hasControlBytes, LineDialogue, ReplyQueue, replyLine, type Side } from "../tcp/dialogue.js";

// The SMTP dialogue of a front (RFC 5321; STARTTLS RFC 3207; pipelining RFC 2920; AUTH RFC 4954;
// XCLIENT from Postfix's XCLIENT_README), without I/O. The front answers STARTTLS itself with the
// office certificate and relays everything else to the backend, in order, even when pipelined:
// replies the front makes itself wait their turn behind the backend's.

export interface SmtpOptions {
  /** The client is on TLS already (smtps). */
  clientTls: boolean;
  /** Upgrade the backend connection with STARTTLS before relaying. */
  backendStarttls: boolean;
  /** Pass the client's address on with XCLIENT (the backend must list gatehouse as an XCLIENT host). */
  xclient: { address: string; port: number } | undefined;
  /** The name gatehouse gives in its own EHLO to the backend. */
  ehloName: string;
  /** Refuse AUTH until the client is on TLS (always true today: no password crosses in clear). */
  authNeedsTls: boolean;
}

/** Extensions a client never sees: the front owns TLS, and the ones below would bypass what it checks. */
const HIDDEN = new Set(["STARTTLS", "XCLIENT", "XFORWARD", "CHUNKING", "BINARYMIME", "XEXCH50"]);

/** Commands the front refuses, so a client can neither spoof its address nor slip past the line reader. */
const REFUSED: Record<string, string> = {
  XCLIENT: "550 5.7.0 XCLIENT is not accepted from clients",
  XFORWARD: "550 5.7.0 XFORWARD is not accepted from clients",
  BDAT: "502 5.5.1 BDAT is not offered here; use DATA",
};

type Expect = "greeting" | "ehlo" | "starttls" | "xclient" | "reply" | "ehlo-client" | "data" | "auth" | "message" | "quit";

export class SmtpDialogue extends LineDialogue {
  private readonly queue = new ReplyQueue<Expect>("greeting");
  /** Lines of the reply being received from the backend. */
  private reply: string[] = [];
  private greeting: string[] = [];
  private saslNext = false;
  private backendOnTls = false;

  constructor(private readonly o: SmtpOptions) {
    super(o.clientTls, {
      closed: "421 4.4.2 The mail server closed the connection; try again later",
      tooMany: "421 4.7.0 Too many errors",
    });
  }

  get holdClient(): boolean {
    if (this.opening || this.tlsStarting) return true;
    // What follows DATA, AUTH and STARTTLS depends on their replies (message, SASL data, TLS).
    return this.queue.awaits(["data", "auth"]);
  }

  passed(from: Side): Action[] {
    if (from !== "client") return [];
    this.queue.expect("message");
    return [];
  }

  protected backendSecured(): Action[] {
    this.backendOnTls = true;
    // RFC 3207: after TLS the server forgets the EHLO; XCLIENT needs a fresh one.
    return this.o.xclient ? this.ehlo() : this.open();
  }

  protected fromClient(line: string): Action[] {
    if (this.saslNext) {
      // A SASL response line (or "*" to cancel), answered by another reply.
      this.saslNext = false;
      this.queue.expect("auth");
      return [{ send: "backend", line }];
    }
    if (hasControlBytes(line)) {
      return this.garbage(() => this.local("500 5.5.2 Syntax error: control characters in the command"));
    }
    const verb = (/^\S*/.exec(line)?.[0] ?? "").toUpperCase();
    const refused = REFUSED[verb];
    if (refused) return this.local(refused);
    switch (verb) {
      case "STARTTLS":
        if (this.clientTls) return this.local("503 5.5.1 TLS is active already");
        this.queue.startTls("reply");
        return this.flushLocal();
      case "AUTH":
        if (!this.clientTls && this.o.authNeedsTls) return this.local("530 5.7.0 Must issue a STARTTLS command first");
        return this.queue.forward(line, "auth");
      case "EHLO":
        return this.queue.forward(line, "ehlo-client");
      case "DATA":
        return this.queue.forward(line, "data");
      case "QUIT":
        this.quitting = true;
        return this.queue.forward(line, "quit");
      default:
        return this.queue.forward(line, "reply");
    }
  }

  private local(reply: string): Action[] {
    this.queue.local("reply", reply);
    return this.flushLocal();
  }

  /** Sends the front's own replies (and carries out a STARTTLS) that are at the head of the queue. */
  private flushLocal(): Action[] {
    // RFC 3207 §4.2: after TLS the session starts over; the client sends EHLO again and the backend resets.
    return this.queue.flushLocal("220 2.0.0 Ready to start TLS", () => {
      this.tlsStarting = true;
    });
  }

  protected fromBackend(line: string): Action[] {
    const r = replyLine(line);
    if (!r) {
      if (this.opening) return [{ close: "error", reason: `the backend sent "${line.slice(0, 60)}" instead of an SMTP reply` }];
      return [{ send: "client", line }];
    }
    const head = this.queue.head;
    const collect = this.opening || head?.expect === "ehlo-client";
    if (collect) {
      this.reply.push(line);
      if (this.reply.length > 200) return [{ close: "error", reason: "the backend sent a reply of more than 200 lines" }];
      if (r.more) return [];
    }
    const lines = collect ? this.reply : [line];
    if (collect) this.reply = [];
    if (r.more) return [{ send: "client", line }];
    const p = this.queue.shift();
    if (!p) return [{ send: "client", line }];
    if (this.opening) return this.openingReply(p.expect, r.code, lines);
    const out: Action[] = [];
    switch (p.expect) {
      case "ehlo-client":
        out.push(...(r.code === 250 ? this.capabilities(lines) : lines).map((l) => send(l)));
        break;
      case "data":
        out.push(send(line));
        if (r.code === 354) out.push({ passDot: "client" });
        break;
      case "auth":
        out.push(send(line));
        // 334: the client's next line is a SASL response, not a command.
        if (r.code === 334) this.saslNext = true;
        break;
      default:
        out.push(send(line));
    }
    return [...out, ...this.flushLocal()];
  }

  /** The backend's EHLO reply as the client should see it. */
  private capabilities(lines: string[]): string[] {
    const [first = "250 ok", ...rest] = lines.map((l) => l.slice(4));
    const kept = rest.filter((ext) => {
      const keyword = (ext.split(/[\s=]/)[0] ?? "").toUpperCase();
      if (HIDDEN.has(keyword)) return false;
      if (keyword === "AUTH" && !this.clientTls && this.o.authNeedsTls) return false;
      return true;
    });
    if (!this.clientTls) kept.push("STARTTLS");
    const all = [first, ...kept];
    return all.map((text, i) => `250${i === all.length - 1 ? " " : "-"}${text}`);
  }

  // The opening, before the client hears anything: greeting, then (as configured) STARTTLS with the
  // backend and XCLIENT, so the client's session starts secured and under its own address.
  private openingReply(expect: Expect, code: number, lines: string[]): Action[] {
    const fail = (what: string): Action[] => [
      { send: "client", line: "421 4.3.0 The mail server is not available; try again later" },
      { close: "error", reason: `backend ${what}: ${lines.join(" / ").slice(0, 200)}` },
    ];
    switch (expect) {
      case "greeting":
        if (code !== 220) return fail("refused the session");
        this.greeting = lines;
        if (this.o.backendStarttls || this.o.xclient) return this.ehlo();
        return this.open();
      case "ehlo": {
        if (code !== 250) return fail("refused EHLO");
        const exts = lines.slice(1).map((l) => l.slice(4).toUpperCase());
        if (this.o.backendStarttls && !this.backendOnTls) {
          if (!exts.some((e) => e === "STARTTLS")) return fail("offers no STARTTLS (backendTls: starttls)");
          this.queue.expect("starttls");
          return [{ send: "backend", line: "STARTTLS" }];
        }
        if (this.o.xclient) {
          if (!exts.some((e) => e.startsWith("XCLIENT") && /\bADDR\b/.test(e)))
            return fail(
              "does not accept XCLIENT from gatehouse (Postfix: add gatehouse's address to smtpd_authorized_xclient_hosts)",
            );
          this.queue.expect("xclient");
          return [{ send: "backend", line: xclientCommand(this.o.xclient) }];
        }
        return this.open();
      }
      case "starttls":
        if (code !== 220) return fail("refused STARTTLS");
        return [{ tls: "backend" }];
      case "xclient":
        if (code !== 220) return fail("refused XCLIENT");
        this.greeting = lines;
        return this.open();
      default:
        return fail("answered out of turn");
    }
  }

  private ehlo(): Action[] {
    this.queue.expect("ehlo");
    return [{ send: "backend", line: `EHLO ${this.o.ehloName}` }];
  }

  private open(): Action[] {
    this.opening = false;
    return this.greeting.map((l) => send(l));
  }
}

function send(line: string): Action {
  return { send: "client", line };
}

/** XCLIENT ADDR=... PORT=...: values are xtext (RFC 3461); IPv6 addresses carry the IPV6: prefix. */
export function xclientCommand(c: { address: string; port: number }): string {
  const addr = isIP(c.address) === 6 ? `IPV6:${c.address}` : c.address;
  return `XCLIENT ADDR=${xtext(addr)} PORT=${c.port}`;
}

function xtext(v: string): string {
  return v.replace(/[^\x21-\x7e]|[+=]/g, (ch) => `+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}
