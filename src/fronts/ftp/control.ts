import { isIP } from "node:net";
import { type Action, hasControlBytes, LineDialogue, replyLine } from "../tcp/dialogue.js";

// The FTP control dialogue of a front (RFC 959; EPSV/EPRT RFC 2428; FTPS RFC 4217; bounce attacks
// RFC 2577), without I/O. The front ends the client's TLS itself (AUTH TLS, PBSZ, PROT) and speaks
// to the backend as configured. Data connections always go to the backend in passive mode; towards
// the client the front offers its own passive ports (227/229) or connects to the client's own
// PORT/EPRT address. A transfer's final reply is held until the relayed data is delivered
// (data.ts), so a client never takes a short file for a whole one.

export type DataMode = "pasv" | "epsv" | "active";
export type Direction = "download" | "upload";

/** What the data side (data.ts) carries out. */
export type FtpAction =
  /** Prepare a data connection: the backend listens on `backendPort`; for the client, a passive port or `target`. */
  | { data: "open"; mode: DataMode; backendPort: number; target?: { host: string; port: number } }
  /** The transfer command went to the backend: connect both sides and relay. */
  | { data: "transfer"; direction: Direction; clientTls: boolean; backendTls: boolean }
  /** The transfer's final reply: send it once the data is delivered (or a 426 if it was not). */
  | { data: "finish"; line: string }
  /** Drop the data connection (ABOR, a failed transfer). */
  | { data: "abort"; reason: string };

export interface FtpOptions {
  /** The client is on TLS already (ftps, implicit). */
  clientTls: boolean;
  backendTls: "plain" | "starttls" | "tls";
  /** The client's address: PORT and EPRT may name no other (FTP bounce). */
  client: string;
  /** The front's address as the client reached it. */
  local: string;
  /** Announced in 227 replies instead of `local` (gatehouse behind NAT). */
  announce?: string;
}

const DOWNLOAD = new Set(["RETR", "LIST", "NLST", "MLSD"]);
const UPLOAD = new Set(["STOR", "STOU", "APPE"]);
/** FEAT lines the front answers for itself: TLS is the front's business. */
const OWN_FEATURES = ["AUTH TLS", "PBSZ", "PROT"];

type Expect =
  | { kind: "greeting" }
  | { kind: "open"; step: "auth" | "pbsz" | "prot" }
  | { kind: "reply" }
  | { kind: "feat" }
  | { kind: "pasv"; mode: DataMode; target?: { host: string; port: number } }
  | { kind: "transfer" }
  | { kind: "local"; line: string }
  | { kind: "auth-tls" };

export class FtpDialogue extends LineDialogue<FtpAction> {
  private protect = false;
  private readonly queue: Expect[] = [{ kind: "greeting" }];
  private reply: string[] = [];
  private multiCode: number | undefined;
  private greeting: string[] = [];
  /** A data connection is being prepared: the client's next command must wait for our reply. */
  private preparing: DataMode | undefined;
  private prepared = false;
  private epsvAll = false;

  constructor(private readonly o: FtpOptions) {
    super(o.clientTls, {
      closed: "421 Service not available, the FTP server closed the connection",
      tooMany: "421 Too many errors",
    });
    // Implicit FTPS protects data connections from the start, as clients of port 990 expect.
    this.protect = o.clientTls;
  }

  get holdClient(): boolean {
    return this.opening || this.tlsStarting || this.preparing !== undefined || this.queue.some((e) => e.kind === "auth-tls");
  }

  passed(): Action<FtpAction>[] {
    return [];
  }

  protected backendSecured(): Action<FtpAction>[] {
    return this.openStep("pbsz");
  }

  /** The data side prepared what an "open" asked for (a passive port), or could not. */
  dataReady(result: { port: number } | { error: string }): Action<FtpAction>[] {
    const mode = this.preparing;
    this.preparing = undefined;
    if ("error" in result) return [send(`425 Cannot open a data connection: ${result.error}`)];
    this.prepared = true;
    if (mode === "epsv") return [send(`229 Entering Extended Passive Mode (|||${result.port}|)`)];
    if (mode === "pasv") {
      const h = (this.o.announce ?? this.o.local).split(".").join(",");
      return [send(`227 Entering Passive Mode (${h},${result.port >> 8},${result.port & 255}).`)];
    }
    return [send("200 PORT command successful")];
  }

  protected fromClient(raw: string): Action<FtpAction>[] {
    // Telnet commands (IAC IP, IAC DM before an urgent ABOR) are not part of the command.
    const line = raw.replace(/\xff[\xf0-\xfe]/g, "").replace(/\xff\xff/g, "\xff");
    if (hasControlBytes(line)) {
      return this.garbage(() => this.local("500 Syntax error: control characters in the command"));
    }
    const space = line.indexOf(" ");
    const cmd = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? "" : line.slice(space + 1).trim();
    switch (cmd) {
      case "AUTH":
        if (!/^(TLS|TLS-C|SSL)$/i.test(arg)) return this.local("504 Only AUTH TLS is offered");
        if (this.clientTls) return this.local("503 TLS is active already");
        this.queue.push({ kind: "auth-tls" });
        return this.flushLocal();
      case "PBSZ":
        return this.local(this.clientTls ? "200 PBSZ=0" : "503 Send AUTH TLS first");
      case "PROT":
        if (!this.clientTls) return this.local("503 Send AUTH TLS first");
        if (!/^[CP]$/i.test(arg)) return this.local("536 Only PROT C and PROT P are offered");
        this.protect = arg.toUpperCase() === "P";
        return this.local(`200 Protection level set to ${this.protect ? "Private" : "Clear"}`);
      case "CCC":
        return this.local("534 CCC is not offered: the control connection stays protected");
      case "FEAT":
        return this.forward(line, { kind: "feat" });
      case "PASV":
        if (this.epsvAll) return this.local("503 EPSV ALL was sent: use EPSV");
        if (isIP(this.o.announce ?? this.o.local) !== 4) return this.local("522 PASV needs IPv4; use EPSV");
        return this.prepare("PASV", { kind: "pasv", mode: "pasv" });
      case "EPSV":
        if (/^ALL$/i.test(arg)) {
          this.epsvAll = true;
          return this.local("200 EPSV ALL accepted");
        }
        return this.prepare("EPSV", { kind: "pasv", mode: "epsv" });
      case "PORT":
      case "EPRT": {
        if (this.epsvAll) return this.local("503 EPSV ALL was sent: use EPSV");
        const target = cmd === "PORT" ? parsePort(arg) : parseEprt(arg);
        if (!target) return this.local(`501 Cannot read the ${cmd} argument`);
        // RFC 2577: a data connection only to the client itself, and never to a privileged port.
        if (target.host !== this.o.client) return this.local(`501 ${cmd} must name your own address (${this.o.client})`);
        if (target.port < 1024) return this.local(`501 ${cmd} to a port below 1024 is refused`);
        // The backend is always reached passively, whatever the client's mode; EPRT's clients know EPSV.
        return this.prepare(cmd === "PORT" ? "PASV" : "EPSV", { kind: "pasv", mode: "active", target });
      }
      case "ABOR":
        this.prepared = false;
        return [{ data: "abort", reason: "the client sent ABOR" }, ...this.forward(line, { kind: "reply" })];
      case "QUIT":
        this.quitting = true;
        return this.forward(line, { kind: "reply" });
      default:
        if (DOWNLOAD.has(cmd) || UPLOAD.has(cmd)) {
          if (!this.prepared) return this.local("425 Use PASV, EPSV, PORT or EPRT first");
          this.prepared = false;
          return [
            ...this.forward(line, { kind: "transfer" }),
            {
              data: "transfer",
              direction: DOWNLOAD.has(cmd) ? "download" : "upload",
              clientTls: this.protect,
              backendTls: this.o.backendTls !== "plain",
            },
          ];
        }
        return this.forward(line, { kind: "reply" });
    }
  }

  private prepare(command: string, expect: Expect & { kind: "pasv" }): Action<FtpAction>[] {
    this.prepared = false;
    this.preparing = expect.mode;
    return this.forward(command, expect);
  }

  private forward(line: string, expect: Expect): Action<FtpAction>[] {
    this.queue.push(expect);
    return [{ send: "backend", line }];
  }

  private local(line: string): Action<FtpAction>[] {
    this.queue.push({ kind: "local", line });
    return this.flushLocal();
  }

  private flushLocal(): Action<FtpAction>[] {
    const out: Action<FtpAction>[] = [];
    for (let head = this.queue[0]; head?.kind === "local" || head?.kind === "auth-tls"; head = this.queue[0]) {
      this.queue.shift();
      if (head.kind === "local") {
        out.push(send(head.line));
        continue;
      }
      this.tlsStarting = true;
      out.push(send("234 Proceed with TLS negotiation"), { tls: "client" });
      break;
    }
    return out;
  }

  protected fromBackend(line: string): Action<FtpAction>[] {
    const r = replyLine(line);
    const collect = this.opening || this.queue[0]?.kind === "feat";
    // A multi-line reply starts "xyz-" and ends at a line "xyz " with the same code (RFC 959 §4.2).
    if (this.multiCode !== undefined) {
      if (!(r && !r.more && r.code === this.multiCode && line[3] === " ")) return this.more(line, collect);
      this.multiCode = undefined;
    } else if (!r) return [send(line)];
    else if (r.more) {
      this.multiCode = r.code;
      return this.more(line, collect);
    }
    const code = r?.code ?? 0;
    const lines = [...this.reply, line];
    this.reply = [];
    // 1xx is preliminary: the command's final reply is still to come.
    if (code < 200) return this.opening ? [] : collect ? lines.map(send) : [send(line)];
    const e = this.queue.shift();
    if (!e) return [send(line)];
    if (this.opening) return this.openingReply(e, code, lines);
    const out: Action<FtpAction>[] = [];
    const text = line.slice(4);
    switch (e.kind) {
      case "feat":
        out.push(...(code === 211 ? features(lines) : collect ? lines : [line]).map(send));
        break;
      case "pasv": {
        const port = code === 227 ? pasvPort(text) : code === 229 ? epsvPort(text) : undefined;
        if (port === undefined) {
          this.preparing = undefined;
          out.push(send(code < 400 ? `425 The FTP server's passive reply cannot be read` : line));
        } else out.push({ data: "open", mode: e.mode, backendPort: port, target: e.target });
        break;
      }
      case "transfer":
        if (code < 300) out.push({ data: "finish", line });
        else out.push({ data: "abort", reason: `the FTP server replied ${line.slice(0, 80)}` }, send(line));
        break;
      default:
        out.push(send(line));
    }
    return [...out, ...this.flushLocal()];
  }

  private more(line: string, collect: boolean): Action<FtpAction>[] {
    if (!collect) return [send(line)];
    this.reply.push(line);
    if (this.reply.length > 500) return [{ close: "error", reason: "the backend sent a reply of more than 500 lines" }];
    return [];
  }

  // The opening, before the client hears anything: the greeting, then TLS with the backend as
  // configured (AUTH TLS, PBSZ 0, PROT P so its data connections are protected too).
  private openingReply(e: Expect, code: number, lines: string[]): Action<FtpAction>[] {
    const fail = (what: string): Action<FtpAction>[] => [
      send("421 The FTP server is not available; try again later"),
      { close: "error", reason: `backend ${what}: ${lines.join(" / ").slice(0, 200)}` },
    ];
    if (e.kind === "greeting") {
      if (code !== 220) return fail("refused the session");
      this.greeting = lines;
      if (this.o.backendTls === "starttls") return this.openStep("auth");
      if (this.o.backendTls === "tls") return this.openStep("pbsz");
      return this.open();
    }
    if (e.kind !== "open") return fail("answered out of turn");
    if (e.step === "auth") return code === 234 ? [{ tls: "backend" }] : fail("refused AUTH TLS");
    if (code !== 200) return fail(`refused ${e.step.toUpperCase()}`);
    return e.step === "pbsz" ? this.openStep("prot") : this.open();
  }

  private openStep(step: "auth" | "pbsz" | "prot"): Action<FtpAction>[] {
    this.queue.push({ kind: "open", step });
    return [{ send: "backend", line: step === "auth" ? "AUTH TLS" : step === "pbsz" ? "PBSZ 0" : "PROT P" }];
  }

  private open(): Action<FtpAction>[] {
    this.opening = false;
    return this.greeting.map(send);
  }
}

function send(line: string): Action<FtpAction> {
  return { send: "client", line };
}

/** The backend's FEAT list with TLS features as the front offers them. */
function features(lines: string[]): string[] {
  const first = lines[0] as string;
  const last = lines[lines.length - 1] as string;
  const body = lines.slice(1, -1).filter((l) => !/^\s*(AUTH|PBSZ|PROT|CCC)\b/i.test(l));
  return [first, ...body, ...OWN_FEATURES.map((f) => ` ${f}`), last];
}

/** "h1,h2,h3,h4,p1,p2" (PORT). */
export function parsePort(arg: string): { host: string; port: number } | undefined {
  const n = arg.split(",").map((x) => Number(x.trim()));
  if (n.length !== 6 || n.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return undefined;
  return { host: n.slice(0, 4).join("."), port: (n[4] as number) * 256 + (n[5] as number) };
}

/** "|1|132.235.1.2|6275|" or "|2|::1|6275|" (EPRT, RFC 2428 §2). */
export function parseEprt(arg: string): { host: string; port: number } | undefined {
  const d = arg[0];
  if (!d) return undefined;
  const parts = arg.split(d);
  if (parts.length !== 5) return undefined;
  const [, proto, host = "", portText = ""] = parts;
  const port = Number(portText);
  if ((proto === "1" && isIP(host) !== 4) || (proto === "2" && isIP(host) !== 6) || (proto !== "1" && proto !== "2"))
    return undefined;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** The port of "Entering Passive Mode (h1,h2,h3,h4,p1,p2)"; the address is ignored (the backend's is used). */
function pasvPort(text: string): number | undefined {
  const m = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(text);
  if (!m) return undefined;
  const port = Number(m[5]) * 256 + Number(m[6]);
  return port > 0 && port < 65536 ? port : undefined;
}

/** The port of "Entering Extended Passive Mode (|||6446|)". */
function epsvPort(text: string): number | undefined {
  const m = /\((.)\1\1(\d{1,5})\1\)/.exec(text);
  const port = Number(m?.[2]);
  return m && port > 0 && port < 65536 ? port : undefined;
}
