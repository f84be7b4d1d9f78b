import { type Action, hasControlBytes, LineDialogue, type Side } from "../tcp/dialogue.js";

// The IMAP dialogue of a front (RFC 9051 and 3501; STARTTLS and LOGINDISABLED RFC 2595; LITERAL+
// RFC 7888; IDLE RFC 2177), without I/O. Literals in either direction pass through unread (a
// message of any size streams), so only the start of a command or response is ever parsed. The
// front answers STARTTLS itself and refuses LOGIN and AUTHENTICATE before TLS.

export interface ImapOptions {
  clientTls: boolean;
  backendStarttls: boolean;
}

/** A literal announced at the end of a line: {12}, {12+} (LITERAL+), ~{12} (BINARY). */
const LITERAL = /\{(\d{1,19})(\+?)\}$/;
const OPEN_TAG = "gh0";

export class ImapDialogue extends LineDialogue {
  private greeting = "";
  /** The next line from that side continues a command or response interrupted by a literal. */
  private continues: Record<Side, boolean> = { client: false, backend: false };
  /** A synchronizing literal the client may send once the backend says "+". */
  private literalWait: { tag: string; bytes: number } | undefined;
  /** Tag of an AUTHENTICATE or IDLE in progress: the client's lines are not commands until it ends. */
  private rawTag: string | undefined;
  /** The tag of the command whose lines are arriving. */
  private tag = "";

  constructor(private readonly o: ImapOptions) {
    super(o.clientTls, { closed: "* BYE The mail server closed the connection", tooMany: "* BYE Too many errors" });
  }

  get holdClient(): boolean {
    return this.opening || this.tlsStarting || this.literalWait !== undefined;
  }

  passed(from: Side): Action[] {
    this.continues[from] = true;
    return [];
  }

  protected backendSecured(): Action[] {
    return this.open();
  }

  protected fromClient(line: string): Action[] {
    if (this.continues.client || this.rawTag !== undefined) {
      this.continues.client = false;
      return this.forward(line, this.rawTag ?? this.tag);
    }
    const m = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)/.exec(line);
    if (!m || hasControlBytes(line)) {
      return this.garbage(() => [
        { send: "client", line: m ? `${m[1]} BAD Control characters in the command` : "* BAD Expected a tag and a command" },
      ]);
    }
    const tag = m[1] as string;
    const cmd = (m[2] as string).toUpperCase();
    this.tag = tag;
    switch (cmd) {
      case "STARTTLS":
        if (this.clientTls) return [{ send: "client", line: `${tag} BAD TLS is active already` }];
        this.tlsStarting = true;
        return [{ send: "client", line: `${tag} OK Begin TLS negotiation now` }, { tls: "client" }];
      case "LOGIN":
      case "AUTHENTICATE":
        if (!this.clientTls)
          return [
            { send: "client", line: `${tag} NO [PRIVACYREQUIRED] Log in after STARTTLS: credentials never cross in clear` },
          ];
        if (cmd === "AUTHENTICATE") this.rawTag = tag;
        return this.forward(line, tag);
      case "COMPRESS":
        // A compressed stream could not be read for STARTTLS, literals and capabilities.
        return [{ send: "client", line: `${tag} NO Compression is not offered here` }];
      case "IDLE":
        this.rawTag = tag;
        return this.forward(line, tag);
      case "LOGOUT":
        this.quitting = true;
        return this.forward(line, tag);
      default:
        return this.forward(line, tag);
    }
  }

  private forward(line: string, tag: string): Action[] {
    const out: Action[] = [{ send: "backend", line }];
    const lit = LITERAL.exec(line);
    if (!lit) return out;
    const bytes = Number(lit[1]);
    if (lit[2] === "+") out.push({ pass: "client", bytes });
    else this.literalWait = { tag, bytes };
    return out;
  }

  protected fromBackend(line: string): Action[] {
    if (this.opening) return this.openingReply(line);
    const out: Action[] = [];
    if (this.continues.backend) {
      this.continues.backend = false;
      out.push(send(line));
    } else if (line.startsWith("+")) {
      out.push(send(line));
      if (this.literalWait) {
        out.push({ pass: "client", bytes: this.literalWait.bytes });
        this.literalWait = undefined;
      }
    } else {
      const [tag = ""] = line.split(" ", 1);
      if (tag === this.rawTag) this.rawTag = undefined;
      if (tag === this.literalWait?.tag) this.literalWait = undefined;
      if (tag === "*" && /^\* BYE\b/i.test(line)) this.quitting = true;
      out.push(send(this.rewrite(line)));
    }
    const lit = LITERAL.exec(line);
    if (lit) out.push({ pass: "backend", bytes: Number(lit[1]) });
    return out;
  }

  /** Capabilities as the client should see them, wherever the backend lists them. */
  private rewrite(line: string): string {
    const untagged = /^(\* CAPABILITY )(.*)$/i.exec(line);
    if (untagged) return `${untagged[1]}${this.capabilities(untagged[2] as string)}`;
    const code = /^(\S+ (?:OK|PREAUTH) \[CAPABILITY )([^\]]*)(\].*)$/i.exec(line);
    if (code) return `${code[1]}${this.capabilities(code[2] as string)}${code[3]}`;
    return line;
  }

  private capabilities(list: string): string {
    const kept = list.split(" ").filter((c) => {
      const u = c.toUpperCase();
      if (u === "STARTTLS" || u === "LOGINDISABLED" || u.startsWith("COMPRESS=")) return false;
      if (u.startsWith("AUTH=") && !this.clientTls) return false;
      return c !== "";
    });
    if (!this.clientTls) kept.push("STARTTLS", "LOGINDISABLED");
    return kept.join(" ");
  }

  private openingReply(line: string): Action[] {
    if (!this.greeting) {
      if (!/^\* (OK|PREAUTH)\b/i.test(line)) return this.fail(`refused the session: ${line.slice(0, 200)}`);
      this.greeting = line;
      if (!this.o.backendStarttls) return this.open();
      return [{ send: "backend", line: `${OPEN_TAG} STARTTLS` }];
    }
    if (line.startsWith("* ")) return [];
    if (line.startsWith(`${OPEN_TAG} OK`)) return [{ tls: "backend" }];
    return this.fail(`refused STARTTLS: ${line.slice(0, 200)}`);
  }

  private fail(reason: string): Action[] {
    return [
      { send: "client", line: "* BYE [UNAVAILABLE] The mail server is not available; try again later" },
      { close: "error", reason: `backend ${reason}` },
    ];
  }

  private open(): Action[] {
    this.opening = false;
    // Capabilities announced before the backend's TLS may differ after it: the client asks again.
    const greeting = this.o.backendStarttls ? this.greeting.replace(/ \[CAPABILITY [^\]]*\]/i, "") : this.rewrite(this.greeting);
    return [send(greeting)];
  }
}

function send(line: string): Action {
  return { send: "client", line };
}
