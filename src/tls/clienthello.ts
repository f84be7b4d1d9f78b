// Reads a TLS ClientHello from the first bytes a client sends, without any I/O: the server name
// (SNI) decides whether a tunnel is intercepted and which certificate to present, before a single
// byte is answered. Written here, not with a TLS library, because the decision comes before TLS
// starts, and because it must survive anything a client sends (a bad length is an answer, never a
// throw). RFC 8446 §4.1.2 and §5.1, RFC 6066 §3 (server_name), RFC 7301 (ALPN).

export type HelloResult =
  /** Not enough bytes yet for the whole ClientHello. */
  | { kind: "more" }
  | { kind: "hello"; sni: string | undefined; alpn: string[]; version: number }
  | { kind: "error"; reason: string };

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const MAX_RECORD = 16_384;
/** A ClientHello this big is an attack, not a client: post-quantum key shares make them ~2 KB. */
export const MAX_HELLO = 64 * 1024;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/;

export function parseClientHello(buf: Buffer): HelloResult {
  if (buf.length === 0) return { kind: "more" };
  if (buf[0] !== HANDSHAKE) return { kind: "error", reason: "not a TLS handshake (the client did not start TLS)" };
  // The handshake message may span several records: gather their fragments first.
  const parts: Buffer[] = [];
  let pos = 0;
  let gathered = 0;
  let needed = -1;
  while (needed < 0 || gathered < needed) {
    if (pos + 5 > buf.length) return more(buf);
    if (buf[pos] !== HANDSHAKE) return { kind: "error", reason: "a non-handshake record inside the ClientHello" };
    if (buf[pos + 1] !== 3) return { kind: "error", reason: "not a TLS record (bad version)" };
    const length = buf.readUInt16BE(pos + 3);
    if (length === 0) return { kind: "error", reason: "an empty handshake record" };
    if (length > MAX_RECORD) return { kind: "error", reason: `a TLS record of ${length} bytes (at most ${MAX_RECORD})` };
    if (pos + 5 + length > buf.length) return more(buf);
    parts.push(buf.subarray(pos + 5, pos + 5 + length));
    gathered += length;
    pos += 5 + length;
    if (needed < 0 && gathered >= 4) {
      const head = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      if (head[0] !== CLIENT_HELLO) return { kind: "error", reason: "the first handshake message is not a ClientHello" };
      needed = 4 + head.readUIntBE(1, 3);
      if (needed > MAX_HELLO) return { kind: "error", reason: `a ClientHello of ${needed} bytes` };
    }
  }
  const msg = Buffer.concat(parts).subarray(4, needed);
  try {
    return readHello(msg);
  } catch (err) {
    return { kind: "error", reason: (err as Error).message };
  }
}

function more(buf: Buffer): HelloResult {
  return buf.length > MAX_HELLO + 5 * 8 ? { kind: "error", reason: "no complete ClientHello in 64 KiB" } : { kind: "more" };
}

class Reader {
  constructor(
    private readonly b: Buffer,
    public pos = 0,
    private readonly end = b.length,
  ) {}

  need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new Error(`the ClientHello's ${what} runs past its end`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.b[this.pos++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  get left(): number {
    return this.end - this.pos;
  }
}

function readHello(msg: Buffer): HelloResult {
  const r = new Reader(msg);
  const version = r.u16("version");
  r.bytes(32, "random");
  const session = r.u8("session id length");
  if (session > 32) throw new Error(`a session id of ${session} bytes`);
  r.bytes(session, "session id");
  const suites = r.u16("cipher suites length");
  if (suites < 2 || suites % 2 !== 0) throw new Error("a malformed cipher suite list");
  r.bytes(suites, "cipher suites");
  const compression = r.u8("compression methods length");
  if (compression < 1) throw new Error("no compression method");
  r.bytes(compression, "compression methods");
  let sni: string | undefined;
  const alpn: string[] = [];
  if (r.left === 0) return { kind: "hello", sni, alpn, version };
  const extLength = r.u16("extensions length");
  if (extLength !== r.left) throw new Error("the extensions length does not match the ClientHello");
  const seen = new Set<number>();
  while (r.left > 0) {
    const type = r.u16("extension type");
    const length = r.u16("extension length");
    const data = r.bytes(length, "extension");
    // RFC 8446 §4.2: one extension of a type at most.
    if (seen.has(type)) throw new Error(`extension ${type} twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) sni = readServerName(data);
    else if (type === EXT_ALPN) alpn.push(...readAlpn(data));
  }
  return { kind: "hello", sni, alpn, version };
}

function readServerName(data: Buffer): string | undefined {
  const r = new Reader(data);
  const listLength = r.u16("server name list length");
  if (listLength !== r.left) throw new Error("the server name list length is wrong");
  let name: string | undefined;
  while (r.left > 0) {
    const type = r.u8("server name type");
    const len = r.u16("server name length");
    const bytes = r.bytes(len, "server name");
    if (type !== 0) continue;
    if (name !== undefined) throw new Error("two host names in server_name");
    const text = bytes.toString("latin1").toLowerCase();
    // RFC 6066 §3: a host name, no trailing dot, never an IP literal.
    if (!HOST_NAME.test(text) || /^[\d.]+$/.test(text))
      throw new Error(`the server name ${JSON.stringify(text.slice(0, 80))} is not a host name`);
    name = text;
  }
  return name;
}

function readAlpn(data: Buffer): string[] {
  const r = new Reader(data);
  const listLength = r.u16("ALPN list length");
  if (listLength !== r.left) throw new Error("the ALPN list length is wrong");
  const out: string[] = [];
  while (r.left > 0) {
    const len = r.u8("ALPN protocol length");
    if (len === 0) throw new Error("an empty ALPN protocol name");
    out.push(r.bytes(len, "ALPN protocol").toString("latin1"));
  }
  return out;
}
