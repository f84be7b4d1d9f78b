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
  OPT: 41,
  ANY: 255,
} as const;

export const TYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const RCODE_NAME = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

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

/** Reads a possibly compressed name at `off`; returns it lower-cased and the offset after it. */
export function readName(buf: Buffer, off: number): { name: string; end: number } {
  let labels = "";
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
    const label = buf.toString("latin1", pos + 1, pos + 1 + len).toLowerCase();
    labels = labels === "" ? label : `${labels}.${label}`;
    pos += 1 + len;
  }
  return { name: labels, end };
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
    if (pos !== buf.length) throw new WireError("bytes after the last record");
    return { id: buf.readUInt16BE(0), flags, question, questionBytes: buf.subarray(12, question.end), edns };
  } catch (err) {
    return { drop: false, rcode: RCODE.FORMERR, reason: (err as Error).message };
  }
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
        else if (type === TYPE.A && rdlength === 4)
          info.addresses.push({ address: buf.subarray(rdata, rdata + 4).join("."), family: 4, ttl });
        else if (type === TYPE.AAAA && rdlength === 16)
          info.addresses.push({ address: ipv6ToString(buf.subarray(rdata, rdata + 16)), family: 6, ttl });
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

function ipv6ToString(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts
    .join(":")
    .replace(/(^|:)0(:0)+(:|$)/, "::")
    .replace(/:{3,}/, "::");
}

// Building messages.

export interface ResourceRecord {
  name: string;
  type: number;
  ttl: number;
  rdata: Buffer;
}

export function encodeName(name: string): Buffer {
  if (name === "") return Buffer.from([0]);
  const parts = name.split(".");
  const out = Buffer.alloc(name.length + 2);
  let pos = 0;
  for (const p of parts) {
    const len = out.write(p, pos + 1, "latin1");
    out[pos] = len;
    pos += len + 1;
  }
  out[pos] = 0;
  return out.subarray(0, pos + 1);
}

function encodeRecord(r: ResourceRecord): Buffer {
  const name = encodeName(r.name);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(1, 2);
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

export interface ResponseParts {
  rcode: number;
  authoritative?: boolean;
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
  header.writeUInt16BE(0x8000 | (parts.authoritative ? 0x0400 : 0) | (q.flags & 0x0100) | 0x0080 | (parts.rcode & 0xf), 2);
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
  const [head = "", tail = ""] = address.includes("::") ? address.split("::") : [address, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g, 16) || 0, i * 2);
  return b;
}

export function rdataName(name: string): Buffer {
  return encodeName(name);
}

export function rdataMX(preference: number, exchange: string): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(preference, 0);
  return Buffer.concat([p, encodeName(exchange)]);
}

export function rdataTXT(strings: string[]): Buffer {
  return Buffer.concat(
    strings.map((s) => {
      const bytes = Buffer.from(s, "utf8");
      return Buffer.concat([Buffer.from([bytes.length]), bytes]);
    }),
  );
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
