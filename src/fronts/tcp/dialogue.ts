// The contract between a protocol's dialogue (FTP control, SMTP, POP3, IMAP: state machines without
// I/O, as mitmproxy's layers are) and the thin socket layer around it (relay.ts). The dialogue is fed
// what arrives from each side and answers with actions; only the relay touches sockets.

export type Side = "client" | "backend";

export const other = (side: Side): Side => (side === "client" ? "backend" : "client");

/** How a session ended, for the session event and the access log. */
export type SessionResult = "closed" | "refused" | "backend-down" | "error" | "timeout";

export type CoreAction =
  /** Send a line (the relay adds CRLF). Lines are byte strings: latin1, one char per byte. */
  | { send: Side; line: string }
  /** The next `bytes` bytes from `pass` go to the other side as they are (an IMAP literal). */
  | { pass: Side; bytes: number }
  /** Bytes from `passDot` go to the other side as they are, up to and including a line ".". */
  | { passDot: Side }
  /** Switch that side to TLS now; plaintext already received from it is discarded, never read. */
  | { tls: Side }
  /** End the session once what was sent is flushed. */
  | { close: SessionResult; reason: string };

export type Action<X = never> = CoreAction | X;

export interface Dialogue<X = never> {
  /** A line from one side, without its line ending. */
  line(from: Side, line: string): Action<X>[];
  /** A stretch started by pass/passDot from `from` has gone through. */
  passed(from: Side): Action<X>[];
  /** TLS with that side is up. */
  secured(side: Side): Action<X>[];
  /** The backend closed the connection (what, if anything, to tell the client before closing). */
  backendClosed(): Action<X>[];
  /** While true, client lines wait unread: a reply still to come decides how they are read. */
  readonly holdClient: boolean;
}

/** Lines the relay sends on its own, in the protocol's words. */
export interface ProtocolLines {
  /** The client was idle for too long. */
  idle: string;
  /** A line longer than the limit: the stream cannot be read further. */
  overlong: string;
  /** gatehouse is stopping and the session outlived shutdownGrace. */
  shutdown: string;
}

/** Splits a reply code line ("250-PIPELINING", "250 OK") into code, whether more lines follow, text. */
export function replyLine(line: string): { code: number; more: boolean; text: string } | undefined {
  const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
  if (!m) return undefined;
  return { code: Number(m[1]), more: m[2] === "-", text: m[3] ?? "" };
}

/** Control characters other than TAB: binary garbage where a command line belongs. */
export function hasControlBytes(line: string): boolean {
  return /[\x00-\x08\x0a-\x1f\x7f]/.test(line);
}

/** Unreadable command lines a client may send before the session is ended as garbage. */
const MAX_BAD = 10;

/** What a dialogue says on its own when the backend goes away or the client sends only garbage. */
export interface DialogueWords {
  /** The backend closed the connection while the client still expected it. */
  closed: string;
  /** Said before closing a client that sent more than MAX_BAD unreadable lines. */
  tooMany: string;
}

/**
 * What the dialogues of the line protocols share: the TLS state of the client side, who a line is
 * for, the session's end, and the count of unreadable lines.
 */
export abstract class LineDialogue<X = never> implements Dialogue<X> {
  /** The backend's greeting (and the front's own opening of the backend) is still under way. */
  protected opening = true;
  protected clientTls: boolean;
  /** The front said "go ahead" to a client's STARTTLS (or AUTH TLS) and waits for its handshake. */
  protected tlsStarting = false;
  /** The client asked to leave: the backend's closing is expected, not an outage. */
  protected quitting = false;
  private bad = 0;

  constructor(
    clientTls: boolean,
    private readonly words: DialogueWords,
  ) {
    this.clientTls = clientTls;
  }

  abstract get holdClient(): boolean;
  abstract passed(from: Side): Action<X>[];
  protected abstract fromClient(line: string): Action<X>[];
  protected abstract fromBackend(line: string): Action<X>[];
  /** TLS with the backend is up: go on opening it. */
  protected abstract backendSecured(): Action<X>[];

  line(from: Side, line: string): Action<X>[] {
    return from === "backend" ? this.fromBackend(line) : this.fromClient(line);
  }

  secured(side: Side): Action<X>[] {
    if (side === "backend") return this.backendSecured();
    this.tlsStarting = false;
    this.clientTls = true;
    return [];
  }

  backendClosed(): Action<X>[] {
    return this.quitting ? [] : [{ send: "client", line: this.words.closed }];
  }

  /** An unreadable command line: answered by `answer`, until too many of them end the session. */
  protected garbage(answer: () => Action<X>[]): Action<X>[] {
    if (++this.bad > MAX_BAD)
      return [
        { send: "client", line: this.words.tooMany },
        { close: "error", reason: "sent binary garbage" },
      ];
    return answer();
  }
}

/** A reply the client is owed: the backend's (of the kind `expect`), or one the front makes itself. */
export interface Owed<E extends string> {
  expect: E;
  /** A reply the front makes itself, sent when its turn comes. */
  local?: string;
  /** The client's STARTTLS (STLS), carried out when its turn comes. */
  tls?: boolean;
}

/**
 * The replies a client is owed, in the order it asked (SMTP and POP3 pipelining): commands go to the
 * backend at once, and a reply the front makes itself (a refusal, the go-ahead for TLS) waits its turn
 * behind the backend's replies to the commands sent before it.
 */
export class ReplyQueue<E extends string> {
  private readonly owed: Owed<E>[];

  constructor(first: E) {
    this.owed = [{ expect: first }];
  }

  /** A reply of this kind will come from the backend. */
  expect(expect: E): void {
    this.owed.push({ expect });
  }

  /** A client's command for the backend, whose reply is of this kind. */
  forward(line: string, expect: E): CoreAction[] {
    this.owed.push({ expect });
    return [{ send: "backend", line }];
  }

  /** The front's own reply, in the place of a backend reply of this kind. */
  local(expect: E, reply: string): void {
    this.owed.push({ expect, local: reply });
  }

  /** The client's STARTTLS, answered and carried out when its turn comes. */
  startTls(expect: E): void {
    this.owed.push({ expect, tls: true });
  }

  get head(): Owed<E> | undefined {
    return this.owed[0];
  }

  shift(): Owed<E> | undefined {
    return this.owed.shift();
  }

  /** Whether a reply of one of these kinds, or a TLS start, is still owed. */
  awaits(kinds: readonly E[]): boolean {
    return this.owed.some((p) => p.tls === true || kinds.includes(p.expect));
  }

  /**
   * The front's own replies now at the head, up to a TLS start: that one is answered with `goAhead`
   * and the client side switched to TLS (`started` is told), and nothing after it is sent yet.
   */
  flushLocal(goAhead: string, started: () => void): CoreAction[] {
    const out: CoreAction[] = [];
    for (let p = this.owed[0]; p && (p.local !== undefined || p.tls); p = this.owed[0]) {
      this.owed.shift();
      if (p.local !== undefined) {
        out.push({ send: "client", line: p.local });
        continue;
      }
      started();
      out.push({ send: "client", line: goAhead }, { tls: "client" });
      break;
    }
    return out;
  }
}
