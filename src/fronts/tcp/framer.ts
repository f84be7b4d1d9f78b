// Cuts one direction of a text protocol into what its dialogue needs next: command and reply lines
// (bounded in bytes), or a stretch that passes through as it is: a counted one (an IMAP literal) or
// one that ends at a line holding a single dot (an SMTP message, a POP3 RETR). The consumer switches
// the mode after each item, before the next one is cut, so no byte is ever read in the wrong mode.
// No I/O: the socket layer pushes chunks in and takes items out.

export type Item =
  | { kind: "line"; line: string }
  /** A piece of the current stretch, to pass on as it is; `last` when the stretch ends with it. */
  | { kind: "raw"; data: Buffer; last: boolean }
  /** No line ending within the limit: the stream cannot be read further. */
  | { kind: "overlong"; limit: number };

type Mode = { kind: "lines" } | { kind: "count"; left: number } | { kind: "dot"; state: DotState };

/** Where a dot-terminated stretch stands: mid-line, at a line start, after ".", after ".\r". */
type DotState = 0 | 1 | 2 | 3;

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

export class Framer {
  private chunks: Buffer[] = [];
  private size = 0;
  private mode: Mode = { kind: "lines" };
  private broken = false;

  constructor(private readonly maxLine: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** Bytes received and not yet taken out. */
  get buffered(): number {
    return this.size;
  }

  /** Drops what is buffered (plaintext that must not survive a switch to TLS); returns how many bytes. */
  discard(): number {
    const n = this.size;
    this.chunks = [];
    this.size = 0;
    return n;
  }

  /** The next `n` bytes pass through. */
  count(n: number): void {
    this.mode = n > 0 ? { kind: "count", left: n } : { kind: "lines" };
  }

  /** Bytes pass through up to and including a line that is a single dot (we are at a line start). */
  dot(): void {
    this.mode = { kind: "dot", state: 1 };
  }

  get inStretch(): boolean {
    return this.mode.kind !== "lines";
  }

  next(): Item | undefined {
    if (this.broken || this.size === 0) return undefined;
    if (this.mode.kind === "lines") return this.nextLine();
    if (this.mode.kind === "count") {
      const data = this.take(Math.min(this.mode.left, this.size));
      this.mode.left -= data.length;
      const last = this.mode.left === 0;
      if (last) this.mode = { kind: "lines" };
      return { kind: "raw", data, last };
    }
    return this.nextDot(this.mode);
  }

  private nextLine(): Item | undefined {
    const first = this.chunks[0] as Buffer;
    if (this.chunks.length > 1 && first.indexOf(LF) < 0) this.flatten();
    const buf = this.chunks[0] as Buffer;
    const lf = buf.indexOf(LF);
    const end = lf > 0 && buf[lf - 1] === CR ? lf - 1 : lf;
    // The limit counts the line without its ending; a partial line may still need its CR.
    if (end > this.maxLine || (lf < 0 && this.size > this.maxLine + 1)) {
      this.broken = true;
      return { kind: "overlong", limit: this.maxLine };
    }
    if (lf < 0) return undefined;
    const line = buf.toString("latin1", 0, end);
    this.take(lf + 1);
    return { kind: "line", line };
  }

  private nextDot(mode: { kind: "dot"; state: DotState }): Item {
    const buf = this.chunks[0] as Buffer;
    let state = mode.state;
    let i = 0;
    while (i < buf.length) {
      if (state === 0) {
        const lf = buf.indexOf(LF, i);
        if (lf < 0) {
          i = buf.length;
          break;
        }
        i = lf + 1;
        state = 1;
        continue;
      }
      const b = buf[i] as number;
      i++;
      if (state === 1) state = b === DOT ? 2 : b === LF ? 1 : 0;
      else if (state === 2) {
        if (b === LF) return this.endDot(i);
        state = b === CR ? 3 : 0;
      } else {
        if (b === LF) return this.endDot(i);
        state = 0;
      }
    }
    mode.state = state;
    return { kind: "raw", data: this.take(buf.length), last: false };
  }

  private endDot(upTo: number): Item {
    this.mode = { kind: "lines" };
    return { kind: "raw", data: this.take(upTo), last: true };
  }

  private flatten(): void {
    this.chunks = [Buffer.concat(this.chunks, this.size)];
  }

  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (n >= first.length) {
      this.chunks.shift();
      this.size -= first.length;
      return first;
    }
    this.chunks[0] = first.subarray(n);
    this.size -= n;
    return first.subarray(0, n);
  }
}
