import type { StoredAnswer } from "./exchange.js";
import { inspectAnswer, readName, readQuestion, TYPE, WireError } from "./wire.js";

// An upstream answer is cleaned before it is cached or answered, as Unbound's scrubber does for a
// forwarder: only records that answer the question asked are kept, so an upstream (or a forger that
// got past the ID, port and question checks) cannot slip other names in beside the answer.
//
//   answer      records owned by the name asked or a name in its CNAME chain (and DNAMEs above them)
//   authority   SOA and NS of a zone holding a name in the chain; DNSSEC proof records inside it
//   additional  records owned by a chain name; A/AAAA of names the kept MX, SRV and NS records point to
//
// A CNAME chain that loops is an error of the data, answered SERVFAIL (as Unbound does).

export class CnameLoopError extends Error {
  readonly code = "GH_DNS_CNAME_LOOP";
}

interface Span {
  section: 0 | 1 | 2;
  start: number;
  /** Just past the owner name: type, class, TTL and rdlength follow. */
  fixed: number;
  end: number;
  owner: string;
  type: number;
}

const PROOF_TYPES: ReadonlySet<number> = new Set([TYPE.NSEC, TYPE.NSEC3, TYPE.RRSIG, TYPE.DS]);
const ADDRESS_TYPES: ReadonlySet<number> = new Set([TYPE.A, TYPE.AAAA, TYPE.RRSIG]);

/**
 * The answer to `qname` as the cache keeps it: out-of-bailiwick records removed, no OPT record, in
 * a Buffer of its own (never a slice of a pooled one, so the bytes counted are the bytes held).
 * Throws WireError for a malformed message and CnameLoopError for a CNAME loop.
 */
export function storeableAnswer(bytes: Buffer, qname: string): StoredAnswer {
  if (bytes.length < 12) throw new WireError("message shorter than a header");
  let pos = 12;
  for (let i = bytes.readUInt16BE(4); i > 0; i--) pos = readQuestion(bytes, pos).end;
  const questionEnd = pos;
  const spans: Span[] = [];
  let opt: Span | undefined;
  const counts = [bytes.readUInt16BE(6), bytes.readUInt16BE(8), bytes.readUInt16BE(10)];
  for (let section = 0 as 0 | 1 | 2; section < 3; section++) {
    for (let i = 0; i < (counts[section] as number); i++) {
      const { name: owner, end: fixed } = readName(bytes, pos);
      if (fixed + 10 > bytes.length) throw new WireError("record runs past the end");
      const end = fixed + 10 + bytes.readUInt16BE(fixed + 8);
      if (end > bytes.length) throw new WireError("record data runs past the end");
      const span: Span = { section, start: pos, fixed, end, owner, type: bytes.readUInt16BE(fixed) };
      if (span.type !== TYPE.OPT) spans.push(span);
      else if (section === 2 && !opt) opt = span;
      else throw new WireError("OPT record out of place");
      pos = end;
    }
  }
  const kept = keptRecords(bytes, spans, qname);
  const optLast = !opt || opt.end === pos;
  let clean: Buffer;
  if (kept.length === spans.length && optLast) {
    // The common case: nothing to remove but the OPT record at the end; the bytes are kept as sent.
    clean = Buffer.allocUnsafeSlow(opt ? opt.start : pos);
    bytes.copy(clean, 0, 0, clean.length);
    if (opt) clean.writeUInt16BE(bytes.readUInt16BE(10) - 1, 10);
  } else {
    clean = rebuild(bytes, questionEnd, kept);
  }
  return { bytes: clean, info: inspectAnswer(clean), cnamesAllowed: 0, summary: undefined };
}

function keptRecords(bytes: Buffer, spans: readonly Span[], qname: string): Span[] {
  const cnameOf = new Map<string, string>();
  for (const s of spans) {
    if (s.section === 0 && s.type === TYPE.CNAME && !cnameOf.has(s.owner))
      cnameOf.set(s.owner, readName(bytes, s.fixed + 10).name);
  }
  const chain = new Set([qname]);
  for (let name = cnameOf.get(qname); name !== undefined; name = cnameOf.get(name)) {
    if (chain.has(name)) throw new CnameLoopError(`the CNAME chain of ${qname} loops back to ${name}`);
    chain.add(name);
  }
  const inChainZone = (owner: string) => [...chain].some((n) => isAtOrBelow(n, owner));
  const zones: string[] = [];
  for (const s of spans) {
    if (s.section === 1 && (s.type === TYPE.SOA || s.type === TYPE.NS) && inChainZone(s.owner)) zones.push(s.owner);
  }
  const targets = new Set<string>();
  const kept: Span[] = [];
  for (const s of spans) {
    let keep: boolean;
    if (s.section === 0) keep = chain.has(s.owner) || (s.type === TYPE.DNAME && inChainZone(s.owner));
    else if (s.section === 1)
      keep =
        ((s.type === TYPE.SOA || s.type === TYPE.NS) && zones.includes(s.owner)) ||
        (PROOF_TYPES.has(s.type) && zones.some((z) => isAtOrBelow(s.owner, z)));
    else keep = chain.has(s.owner) || (ADDRESS_TYPES.has(s.type) && targets.has(s.owner));
    if (!keep) continue;
    kept.push(s);
    // Answer and authority come before additional, so the names they point to are known in time.
    const rdata = s.fixed + 10;
    if (s.type === TYPE.MX) targets.add(readName(bytes, rdata + 2).name);
    else if (s.type === TYPE.SRV) targets.add(readName(bytes, rdata + 6).name);
    else if (s.type === TYPE.NS) targets.add(readName(bytes, rdata).name);
  }
  return kept;
}

/** True if `name` is `zone` or a name below it (label-wise, escapes respected). */
export function isAtOrBelow(name: string, zone: string): boolean {
  if (zone === "" || name === zone) return true;
  if (!name.endsWith(zone) || name.charCodeAt(name.length - zone.length - 1) !== 0x2e) return false;
  // The dot before the zone must not itself be escaped ("a\.example" is one label under the root).
  let backslashes = 0;
  for (let i = name.length - zone.length - 2; i >= 0 && name.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes % 2 === 0;
}

/**
 * A new message with only the kept records. Names are copied label by label (their bytes exactly,
 * a label holding a dot stays one label) and compressed afresh, so every pointer points inside the
 * new message; names inside the data of CNAME, NS, PTR, MX, SOA, SRV and DNAME are rewritten the same
 * way, other data is copied as it is (RFC 3597: newer types never compress names).
 */
function rebuild(bytes: Buffer, questionEnd: number, kept: readonly Span[]): Buffer {
  const w = new MessageWriter();
  const header = Buffer.from(bytes.subarray(0, 12));
  const counts = [0, 0, 0];
  for (const s of kept) counts[s.section] = (counts[s.section] as number) + 1;
  header.writeUInt16BE(counts[0] as number, 6);
  header.writeUInt16BE(counts[1] as number, 8);
  header.writeUInt16BE(counts[2] as number, 10);
  w.raw(header);
  // The question: its labels as sent (so a client's question bytes can be copied over it later).
  let pos = 12;
  while (pos < questionEnd) {
    const { labels, end } = readLabels(bytes, pos);
    w.name(labels, false);
    w.raw(bytes.subarray(end, end + 4));
    pos = end + 4;
  }
  for (const s of kept) {
    w.name(readLabels(bytes, s.start).labels, true);
    w.raw(bytes.subarray(s.fixed, s.fixed + 8));
    const length = Buffer.alloc(2);
    w.raw(length);
    const before = w.size;
    const rdata = s.fixed + 10;
    writeRdata(w, bytes, s.type, rdata, s.end);
    length.writeUInt16BE(w.size - before, 0);
  }
  return w.finish();
}

function writeRdata(w: MessageWriter, bytes: Buffer, type: number, start: number, end: number): void {
  const name = (at: number, compress: boolean): number => {
    const r = readLabels(bytes, at);
    w.name(r.labels, compress);
    return r.end;
  };
  let pos: number;
  switch (type) {
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
      pos = name(start, true);
      break;
    case TYPE.DNAME:
      pos = name(start, false);
      break;
    case TYPE.MX:
      w.raw(bytes.subarray(start, start + 2));
      pos = name(start + 2, true);
      break;
    case TYPE.SRV:
      w.raw(bytes.subarray(start, start + 6));
      pos = name(start + 6, false);
      break;
    case TYPE.SOA:
      pos = name(name(start, true), true);
      w.raw(bytes.subarray(pos, pos + 20));
      pos += 20;
      break;
    default:
      w.raw(bytes.subarray(start, end));
      return;
  }
  if (pos !== end) throw new WireError(`record data of type ${type} does not match its length`);
}

/** The labels of a possibly compressed name, as their raw bytes. */
function readLabels(buf: Buffer, off: number): { labels: Buffer[]; end: number } {
  const labels: Buffer[] = [];
  let end = -1;
  let pos = off;
  for (let jumps = 0; ; ) {
    if (pos >= buf.length) throw new WireError("name runs past the end of the message");
    const len = buf[pos] as number;
    if (len === 0) return { labels, end: end < 0 ? pos + 1 : end };
    if ((len & 0xc0) === 0xc0) {
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] as number);
      if (target >= pos || ++jumps > 127) throw new WireError("compression pointer loop");
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0 || pos + 1 + len > buf.length) throw new WireError("bad label");
    labels.push(buf.subarray(pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** Writes a message front to back, compressing names against the names already written. */
class MessageWriter {
  private readonly chunks: Buffer[] = [];
  private readonly names = new Map<string, number>();
  size = 0;

  raw(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }

  name(labels: readonly Buffer[], compress: boolean): void {
    for (let i = 0; i < labels.length; i++) {
      const key = labels
        .slice(i)
        .map((l) => `${l.length}:${l.toString("latin1")}`)
        .join("");
      const at = this.names.get(key);
      if (compress && at !== undefined) {
        this.raw(Buffer.from([0xc0 | (at >> 8), at & 0xff]));
        return;
      }
      // Pointers hold 14 bits of offset.
      if (at === undefined && this.size < 0x4000) this.names.set(key, this.size);
      const label = labels[i] as Buffer;
      this.raw(Buffer.from([label.length]));
      this.raw(label);
    }
    this.raw(Buffer.from([0]));
  }

  finish(): Buffer {
    if (this.size > 65_535) throw new WireError("answer longer than 65535 bytes once rewritten");
    const out = Buffer.allocUnsafeSlow(this.size);
    let pos = 0;
    for (const c of this.chunks) pos += c.copy(out, pos);
    return out;
  }
}
