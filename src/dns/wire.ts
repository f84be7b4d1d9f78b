import ipaddr from "ipaddr.js";

// The DNS wire format, written here rather than through dns2's general decoder: the hot paths
// (a cache hit, a forwarded answer) only need the header, the question, the TTL offsets and the
// CNAME chain, and must survive hostile packets (compression loops, bad lengths) without ever
// throwing past this module. Everything is offsets into the original Buffer.

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  DNAME: 39,
  OPT: 41,
  DS: 43,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  NSEC3: 50,
  SVCB: 64,
  HTTPS: 65,
  ANY: 255,
} as const;

export const CLASS = { IN: 1, CH: 3 } as const;

export const TYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const RCODE_NAME: Record<number, string> = Object.fromEntries(Object.entries(RCODE).map(([k, v]) => [v, k]));

export class WireError extends Error {}

export interface Question {
  /** Lower case, no trailing dot; "" for the root. */
  name: string;
  type: number;
  class: number;
  /** Offset just past the question in the message. */
  end: number;
}

export interface ParsedQuery {
  id: number;
  flags: number;
  question: Question;
  /** The client's question bytes as sent (name case included), echoed back in answers (0x20). */
  questionBytes: Buffer;
  edns: { udpSize: number; do: boolean; version: number } | undefined;
}

/**
 * Reads a possibly compressed name at `off`; returns it and the offset after it. The name is in
 * presentation form as dig prints it, lower-cased (ASCII only, as DNS compares names): labels joined
 * by dots, a dot or backslash inside a label escaped as \. and \\, other bytes outside printable
 * ASCII as \DDD. So a label holding a dot stays one label through the cache keys, the rules and
 * encodeName, and "a.b" (two labels) and "a\.b" (one) stay different names, as they are on the wire.
 */
export function readName(buf: Buffer, off: number): { name: string; end: number } {
  let name = "";
  let length = 0;
  let end = -1;
  let jumps = 0;
  let pos = off;
  for (;;) {
    if (pos >= buf.length) throw new WireError("name runs past the end of the message");
    const len = buf[pos] as number;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const top = len & 0xc0;
    if (top === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError("truncated compression pointer");
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] as number);
      // Pointers must go backwards, and a name has at most 127 labels: this bounds any loop.
      if (target >= pos || ++jumps > 127) throw new WireError("compression pointer loop");
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (top !== 0) throw new WireError("bad label type");
    if (pos + 1 + len > buf.length) throw new WireError("label runs past the end of the message");
    length += len + 1;
    if (length > 255) throw new WireError("name longer than 255 bytes");
    const label = readLabel(buf, pos + 1, pos + 1 + len);
    name = name === "" ? label : `${name}.${label}`;
    pos += 1 + len;
  }
  return { name, end };
}

function readLabel(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const c = buf[i] as number;
    // Anything but printable ASCII, a dot or a backslash takes the slow path (rare in real names).
    if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) return escapeLabel(buf, start, end);
  }
  return buf.toString("latin1", start, end).toLowerCase();
}

function escapeLabel(buf: Buffer, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i++) {
    const c = buf[i] as number;
    if (c >= 0x41 && c <= 0x5a) out += String.fromCharCode(c + 0x20);
    else if (c === 0x2e || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c <= 0x20 || c >= 0x7f) out += `\\${String(c).padStart(3, "0")}`;
    else out += String.fromCharCode(c);
  }
  return out;
}

/** The labels of a name in presentation form (readName's output), as raw bytes. */
export function nameLabels(name: string): Buffer[] {
  if (name === "") return [];
  if (!name.includes("\\")) return name.split(".").map((l) => Buffer.from(l, "latin1"));
  const labels: Buffer[] = [];
  let bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (ch === 0x2e) {
      labels.push(Buffer.from(bytes));
      bytes = [];
    } else if (ch === 0x5c) {
      const digits = /^\d{3}/.exec(name.slice(i + 1, i + 4));
      if (digits) {
        const v = Number(digits[0]);
        if (v > 255) throw new WireError(`bad escape \\${digits[0]} in "${name}"`);
        bytes.push(v);
        i += 3;
      } else if (i + 1 < name.length) bytes.push(name.charCodeAt(++i) & 0xff);
      else throw new WireError(`"${name}" ends in a backslash`);
    } else bytes.push(ch & 0xff);
  }
  labels.push(Buffer.from(bytes));
  return labels;
}

/** Offset after a name, without decoding it. */
export function skipName(buf: Buffer, off: number): number {
  let pos = off;
  for (let guard = 0; guard < 128; guard++) {
    if (pos >= buf.length) throw new WireError("name runs past the end of the message");
    const len = buf[pos] as number;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError("truncated compression pointer");
      return pos + 2;
    }
    if ((len & 0xc0) !== 0) throw new WireError("bad label type");
    pos += 1 + len;
  }
  throw new WireError("too many labels");
}

export function readQuestion(buf: Buffer, off: number): Question {
  const { name, end } = readName(buf, off);
  if (end + 4 > buf.length) throw new WireError("question runs past the end of the message");
  return { name, type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2), end: end + 4 };
}

export type QueryProblem = { drop: true } | { drop: false; rcode: number; reason: string };

/** Parses a client's query, or says whether to drop it or answer with an error code. */
export function parseQuery(buf: Buffer): ParsedQuery | QueryProblem {
  if (buf.length < 12) return { drop: true };
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return { drop: true }; // QR set: a response, never answered (reflection loops).
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { drop: false, rcode: RCODE.NOTIMP, reason: `opcode ${opcode} not supported` };
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) return { drop: false, rcode: RCODE.FORMERR, reason: `${qd} questions` };
  try {
    const question = readQuestion(buf, 12);
    let pos = question.end;
    for (let i = 0; i < an + ns; i++) pos = skipRecord(buf, pos);
    let edns: ParsedQuery["edns"];
    for (let i = 0; i < ar; i++) {
      const nameEnd = skipName(buf, pos);
      if (nameEnd + 10 > buf.length) throw new WireError("record runs past the end");
      const type = buf.readUInt16BE(nameEnd);
      if (type === TYPE.OPT) {
        if (edns) throw new WireError("two OPT records");
        edns = {
          udpSize: Math.max(512, buf.readUInt16BE(nameEnd + 2)),
          do: (buf.readUInt16BE(nameEnd + 6) & 0x8000) !== 0,
          version: buf[nameEnd + 5] as number,
        };
      }
      pos = skipRecord(buf, pos);
    }
    // Bytes after the last counted record are ignored, as Unbound and dnsmasq do: some clients
    // and middleboxes pad queries, and the question is complete.
    return { id: buf.readUInt16BE(0), flags, question, questionBytes: buf.subarray(12, question.end), edns };
  } catch (err) {
    return { drop: false, rcode: RCODE.FORMERR, reason: (err as Error).message };
  }
}

/** A plain query read for the hot path (quickQuery): its question as a key, not as a name. */
export interface QuickQuery {
  /**
   * The question's bytes (name, type, class) with ASCII letters lower-cased, then one byte for the
   * DO bit, as a latin1 string: equal keys, equal questions as the resolver sees them.
   */
  key: string;
  id: number;
  flags: number;
  /** Offset just past the question. */
  end: number;
  edns: ParsedQuery["edns"];
}

// quickQuery lower-cases into this, then reads the key out of it in one call: 256 name bytes, type,
// class and the DO byte at most.
const keyScratch = Buffer.allocUnsafe(264);

/**
 * The common query read without building its name: one question whose name is plain labels
 * (printable ASCII, no dot or backslash inside a label, no compression pointer), no answer or
 * authority records, and nothing or an EDNS0 OPT record as the additional section. undefined for
 * anything else, which parseQuery reads in full (and answers with FORMERR, NOTIMP or BADVERS if it
 * must): this never decides that a query is bad, only that it is plain.
 */
export function quickQuery(buf: Buffer): QuickQuery | undefined {
  const len = buf.length;
  // Header, a root name, type and class at least. QR clear and opcode 0 (QUERY).
  if (len < 17 || ((buf[2] as number) & 0xf8) !== 0) return undefined;
  // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
  if (buf.readUInt32BE(4) !== 0x00010000 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0) return undefined;
  const additional = buf[11] as number;
  if (additional > 1) return undefined;
  let pos = 12;
  for (;;) {
    if (pos >= len) return undefined;
    const length = buf[pos] as number;
    keyScratch[pos - 12] = length;
    if (length === 0) break;
    // 64 and up: a compression pointer or a label type this path does not read.
    if (length > 63) return undefined;
    const end = pos + 1 + length;
    if (end > len || end - 12 > 255) return undefined;
    for (let i = pos + 1; i < end; i++) {
      const c = buf[i] as number;
      // The bytes readName escapes: the slow path (rare in real names).
      if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) return undefined;
      keyScratch[i - 12] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    }
    pos = end;
  }
  const end = pos + 5;
  if (end > len) return undefined;
  keyScratch[pos - 11] = buf[pos + 1] as number;
  keyScratch[pos - 10] = buf[pos + 2] as number;
  keyScratch[pos - 9] = buf[pos + 3] as number;
  keyScratch[pos - 8] = buf[pos + 4] as number;
  let edns: QuickQuery["edns"];
  if (additional === 1) {
    // Only an OPT record owned by the root, whole, of EDNS version 0.
    if (end + 11 > len || buf[end] !== 0 || buf.readUInt16BE(end + 1) !== TYPE.OPT || buf[end + 6] !== 0) return undefined;
    if (end + 11 + buf.readUInt16BE(end + 9) > len) return undefined;
    edns = { udpSize: Math.max(512, buf.readUInt16BE(end + 3)), do: ((buf[end + 7] as number) & 0x80) !== 0, version: 0 };
  }
  keyScratch[end - 12] = edns?.do ? 1 : 0;
  return { key: keyScratch.toString("latin1", 0, end - 11), id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), end, edns };
}

export function skipRecord(buf: Buffer, off: number): number {
  const nameEnd = skipName(buf, off);
  if (nameEnd + 10 > buf.length) throw new WireError("record runs past the end");
  const rdlength = buf.readUInt16BE(nameEnd + 8);
  const end = nameEnd + 10 + rdlength;
  if (end > buf.length) throw new WireError("record data runs past the end");
  return end;
}

/** What the cache needs from an upstream answer, found in one walk. */
export interface AnswerInfo {
  rcode: number;
  truncated: boolean;
  /** Offsets of every TTL field (OPT excluded), to count them down when served from the cache. */
  ttlOffsets: number[];
  /** The lowest TTL in the answer; for negatives, the SOA's min(TTL, minimum). undefined: no TTL. */
  minTtl: number | undefined;
  answerCount: number;
  /** Names that CNAMEs in the answer section point to, so blocking can follow the chain. */
  cnameTargets: string[];
  /** A/AAAA addresses in the answer section. */
  addresses: { address: string; family: 4 | 6; ttl: number }[];
  /** Offset and length of an OPT record in the additional section, to strip it. */
  opt: { start: number; end: number } | undefined;
}

export function inspectAnswer(buf: Buffer): AnswerInfo {
  if (buf.length < 12) throw new WireError("message shorter than a header");
  const flags = buf.readUInt16BE(2);
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  let pos = 12;
  for (let i = buf.readUInt16BE(4); i > 0; i--) pos = readQuestion(buf, pos).end;
  const info: AnswerInfo = {
    rcode: flags & 0xf,
    truncated: (flags & 0x0200) !== 0,
    ttlOffsets: [],
    minTtl: undefined,
    answerCount: counts[0] as number,
    cnameTargets: [],
    addresses: [],
    opt: undefined,
  };
  let negativeTtl: number | undefined;
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < (counts[section] as number); i++) {
      const start = pos;
      const nameEnd = skipName(buf, pos);
      if (nameEnd + 10 > buf.length) throw new WireError("record runs past the end");
      const type = buf.readUInt16BE(nameEnd);
      const ttl = buf.readUInt32BE(nameEnd + 4);
      const rdlength = buf.readUInt16BE(nameEnd + 8);
      const rdata = nameEnd + 10;
      pos = rdata + rdlength;
      if (pos > buf.length) throw new WireError("record data runs past the end");
      if (type === TYPE.OPT) {
        info.opt = { start, end: pos };
        continue;
      }
      info.ttlOffsets.push(nameEnd + 4);
      if (section === 0) {
        info.minTtl = info.minTtl === undefined ? ttl : Math.min(info.minTtl, ttl);
        if (type === TYPE.CNAME) info.cnameTargets.push(readName(buf, rdata).name);
        else if (type === TYPE.A || type === TYPE.AAAA) {
          const address = addressOf(type, buf.subarray(rdata, rdata + rdlength));
          if (address) info.addresses.push({ address, family: type === TYPE.A ? 4 : 6, ttl });
        }
      } else if (section === 1 && type === TYPE.SOA) {
        // RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA MINIMUM).
        const mname = skipName(buf, rdata);
        const rname = skipName(buf, mname);
        if (rname + 20 <= pos) negativeTtl = Math.min(ttl, buf.readUInt32BE(rname + 16));
      }
    }
  }
  if (info.answerCount === 0) info.minTtl = negativeTtl;
  return info;
}

/**
 * The answer section in short, for the query log: addresses as they are, other records as
 * "CNAME x", "MX 10 mail.example", "SRV 0 5 143 x", "PTR x", "TXT \"...\""; with no records, the
 * rcode name (or "(truncated)").
 */
export function describeAnswer(buf: Buffer): { rcode: number; answer: string } {
  if (buf.length < 12) throw new WireError("message shorter than a header");
  const flags = buf.readUInt16BE(2);
  const rcode = flags & 0xf;
  let pos = 12;
  for (let i = buf.readUInt16BE(4); i > 0; i--) pos = readQuestion(buf, pos).end;
  const parts: string[] = [];
  const count = buf.readUInt16BE(6);
  let length = 0;
  for (let i = 0; i < count; i++) {
    // A log line stays a line: a big answer is summed up by its first records and a count.
    if (length > SUMMARY_SHOWN) {
      parts.push(`(${count - i} more)`);
      break;
    }
    const nameEnd = skipName(buf, pos);
    if (nameEnd + 10 > buf.length) throw new WireError("record runs past the end");
    const type = buf.readUInt16BE(nameEnd);
    const rdata = nameEnd + 10;
    pos = rdata + buf.readUInt16BE(nameEnd + 8);
    if (pos > buf.length) throw new WireError("record data runs past the end");
    const part = describeRecord(buf, type, rdata, pos);
    length += part.length + 2;
    parts.push(part);
  }
  if (parts.length > 0) return { rcode, answer: parts.join(", ") };
  return { rcode, answer: flags & 0x0200 ? "(truncated)" : (RCODE_NAME[rcode] ?? String(rcode)) };
}

const TXT_SHOWN = 200;
const SUMMARY_SHOWN = 400;

function describeRecord(buf: Buffer, type: number, start: number, end: number): string {
  const name = (at: number) => readName(buf, at).name;
  switch (type) {
    case TYPE.A:
    case TYPE.AAAA:
      return addressOf(type, buf.subarray(start, end)) ?? TYPE_NAME[type] ?? "";
    case TYPE.CNAME:
    case TYPE.PTR:
    case TYPE.NS:
    case TYPE.DNAME:
      return `${TYPE_NAME[type]} ${name(start)}`;
    case TYPE.MX:
      return `MX ${buf.readUInt16BE(start)} ${name(start + 2)}`;
    case TYPE.SRV:
      return `SRV ${buf.readUInt16BE(start)} ${buf.readUInt16BE(start + 2)} ${buf.readUInt16BE(start + 4)} ${name(start + 6)}`;
    case TYPE.TXT: {
      const strings: string[] = [];
      for (let p = start; p < end; p += 1 + (buf[p] as number)) {
        strings.push(JSON.stringify(buf.toString("utf8", p + 1, Math.min(end, p + 1 + (buf[p] as number)))));
      }
      const text = `TXT ${strings.join(" ")}`;
      return text.length > TXT_SHOWN ? `${text.slice(0, TXT_SHOWN)}...` : text;
    }
    default:
      return TYPE_NAME[type] ?? `TYPE${type}`;
  }
}

/** The address in an A or AAAA record's data, or undefined for any other shape. */
export function addressOf(type: number, rdata: Buffer): string | undefined {
  if (type === TYPE.A && rdata.length === 4) return `${rdata[0]}.${rdata[1]}.${rdata[2]}.${rdata[3]}`;
  if (type === TYPE.AAAA && rdata.length === 16) return ipv6ToString(rdata);
  return undefined;
}

function ipv6ToString(b: Buffer): string {
  return (ipaddr.fromByteArray([...b]) as ipaddr.IPv6).toRFC5952String();
}

// Building messages.

export interface ResourceRecord {
  name: string;
  type: number;
  /** IN unless said (CHAOS answers). */
  class?: number;
  ttl: number;
  rdata: Buffer;
}

/** A name in presentation form (readName's output, escapes included) on the wire, uncompressed. */
export function encodeName(name: string): Buffer {
  return encodeLabels(nameLabels(name), name);
}

function encodeLabels(labels: readonly Buffer[], name: string): Buffer {
  let total = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > 63) throw new WireError(`"${name}" has an empty label or one longer than 63 bytes`);
    total += l.length + 1;
  }
  if (total > 255) throw new WireError(`"${name}" is longer than 255 bytes`);
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const l of labels) {
    out[pos] = l.length;
    l.copy(out, pos + 1);
    pos += l.length + 1;
  }
  out[pos] = 0;
  return out;
}

function encodeRecord(r: ResourceRecord): Buffer {
  const name = encodeName(r.name);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(r.class ?? CLASS.IN, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([name, fixed, r.rdata]);
}

/** EDNS0 OPT record advertising our UDP size (RFC 6891), DO copied from the client. */
export function optRecord(udpSize: number, dnssecOk: boolean, extendedRcode = 0): Buffer {
  const b = Buffer.alloc(11);
  b[0] = 0;
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(udpSize, 3);
  b.writeUInt32BE(((extendedRcode >> 4) << 24) | (dnssecOk ? 0x8000 : 0), 5);
  b.writeUInt16BE(0, 9);
  return b;
}

/** A response built here (local, blocked, refused...), encoded to wire only for wire clients. */
export interface ResponseParts {
  rcode: number;
  authoritative?: boolean;
  /** TC: the client should ask again over TCP (rate-limit slip). */
  truncated?: boolean;
  answers?: ResourceRecord[];
  authority?: ResourceRecord[];
  additional?: ResourceRecord[];
}

/** A response to `q`, echoing its ID, RD bit and question bytes. */
export function buildResponse(q: ParsedQuery, parts: ResponseParts, ednsSize: number): Buffer {
  const answers = parts.answers ?? [];
  const authority = parts.authority ?? [];
  const additional = parts.additional ?? [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // Codes above 15 (BADVERS) keep their high bits in the OPT record.
  header.writeUInt16BE(
    0x8000 |
      (parts.authoritative ? 0x0400 : 0) |
      (parts.truncated ? 0x0200 : 0) |
      (q.flags & 0x0100) |
      0x0080 |
      (parts.rcode & 0xf),
    2,
  );
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt16BE(authority.length, 8);
  header.writeUInt16BE(additional.length + (q.edns ? 1 : 0), 10);
  const chunks = [
    header,
    q.questionBytes,
    ...answers.map(encodeRecord),
    ...authority.map(encodeRecord),
    ...additional.map(encodeRecord),
  ];
  if (q.edns) chunks.push(optRecord(ednsSize, q.edns.do, parts.rcode));
  return Buffer.concat(chunks);
}

/** Header and question only, with TC set: the client retries over TCP (RFC 7766). */
export function truncatedResponse(response: Buffer, questionEnd: number, withOpt: Buffer | undefined): Buffer {
  const head = Buffer.from(response.subarray(0, questionEnd));
  head.writeUInt16BE(head.readUInt16BE(2) | 0x0200, 2);
  head.writeUInt16BE(0, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(withOpt ? 1 : 0, 10);
  return withOpt ? Buffer.concat([head, withOpt]) : head;
}

/** A query for upstreams: random ID, RD set, EDNS0 with our buffer size, DO if the client asked. */
export function buildQuery(id: number, name: string, type: number, qclass: number, dnssecOk = false): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(qclass, 2);
  return Buffer.concat([header, encodeName(name), tail, optRecord(1232, dnssecOk)]);
}

// RDATA encoders for local records.

export function rdataA(address: string): Buffer {
  return Buffer.from(address.split(".").map(Number));
}

export function rdataAAAA(address: string): Buffer {
  return Buffer.from(ipaddr.IPv6.parse(address).toByteArray());
}

export function rdataName(name: string): Buffer {
  return encodeName(name);
}

export function rdataMX(preference: number, exchange: string): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(preference, 0);
  return Buffer.concat([p, encodeName(exchange)]);
}

/** TXT strings; one longer than 255 bytes is split into several, as zone file compilers do. */
export function rdataTXT(strings: string[]): Buffer {
  const chunks: Buffer[] = [];
  for (const s of strings) {
    const bytes = Buffer.from(s, "utf8");
    for (let i = 0; i === 0 || i < bytes.length; i += 255) {
      const part = bytes.subarray(i, i + 255);
      chunks.push(Buffer.from([part.length]), part);
    }
  }
  return Buffer.concat(chunks);
}

export function rdataSRV(priority: number, weight: number, port: number, target: string): Buffer {
  const p = Buffer.alloc(6);
  p.writeUInt16BE(priority, 0);
  p.writeUInt16BE(weight, 2);
  p.writeUInt16BE(port, 4);
  return Buffer.concat([p, encodeName(target)]);
}

export function rdataSOA(mname: string, rname: string, nums: [number, number, number, number, number]): Buffer {
  const n = Buffer.alloc(20);
  for (const [i, v] of nums.entries()) n.writeUInt32BE(v >>> 0, i * 4);
  return Buffer.concat([encodeName(mname), encodeName(rname), n]);
}

export function rdataHINFO(cpu: string, os: string): Buffer {
  return rdataTXT([cpu, os]);
}
