import type { Decision, RuleRef } from "../pipeline/stage.js";
import { type AnswerInfo, optRecord, type ParsedQuery, truncatedResponse } from "./wire.js";

export interface DnsClient {
  address: string;
  transport: "udp" | "tcp" | "internal";
}

/** One query as it passes the DNS stages. */
export interface DnsExchange {
  readonly client: DnsClient;
  readonly query: ParsedQuery;
  /** Lower-cased question name, no trailing dot. */
  readonly name: string;
  readonly type: number;
  readonly qclass: number;
  readonly decisions: Decision[];
  readonly log: { upstream?: string; rule?: RuleRef };
}

/** An upstream answer as stored: no OPT record, TTLs clamped, plus what was learnt walking it. */
export interface StoredAnswer {
  bytes: Buffer;
  info: AnswerInfo;
}

export type DnsOutcome =
  /** A message built here for this very query (local, blocked, refused, errors). */
  | { kind: "message"; bytes: Buffer; result: DnsResult }
  /** An upstream answer, `age` seconds old, adapted to the client on the way out. */
  | { kind: "upstream"; answer: StoredAnswer; age: number; result: DnsResult; staleTtl?: number }
  | { kind: "drop"; result: DnsResult };

export type DnsResult = "local" | "blocked" | "cached" | "forwarded" | "stale" | "refused" | "error" | "ratelimited" | "formerr";

/**
 * The bytes a client receives for an upstream answer: its own ID and question bytes (0x20 case),
 * TTLs counted down by the answer's age, our OPT record if it sent one, and TC when it does not fit.
 */
export function adaptAnswer(x: DnsExchange, outcome: Extract<DnsOutcome, { kind: "upstream" }>, maxSize: number): Buffer {
  const { bytes, info } = outcome.answer;
  const withOpt = x.query.edns !== undefined;
  const out = Buffer.allocUnsafe(bytes.length + (withOpt ? 11 : 0));
  bytes.copy(out, 0);
  out.writeUInt16BE(x.query.id, 0);
  // QR, the upstream's opcode and rcode, RA; the client's RD; never AA (this is a cached copy);
  // AD only for clients that asked for DNSSEC (DO).
  const keep = x.query.edns?.do ? 0xfbaf : 0xfb8f;
  out.writeUInt16BE((bytes.readUInt16BE(2) & keep & ~0x0100) | 0x8080 | (x.query.flags & 0x0100), 2);
  x.query.questionBytes.copy(out, 12);
  const age = outcome.age;
  for (const off of info.ttlOffsets) {
    const ttl = outcome.staleTtl ?? Math.max(0, bytes.readUInt32BE(off) - age);
    out.writeUInt32BE(ttl, off);
  }
  if (withOpt) {
    optRecord(1232, x.query.edns?.do === true).copy(out, bytes.length);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  if (out.length <= maxSize) return out;
  return truncatedResponse(
    out,
    12 + x.query.questionBytes.length,
    withOpt ? optRecord(1232, x.query.edns?.do === true) : undefined,
  );
}

/** A message built here, cut to header and question with TC when it does not fit. */
export function fitMessage(x: DnsExchange, bytes: Buffer, maxSize: number): Buffer {
  if (bytes.length <= maxSize) return bytes;
  const withOpt = x.query.edns !== undefined;
  return truncatedResponse(
    bytes,
    12 + x.query.questionBytes.length,
    withOpt ? optRecord(1232, x.query.edns?.do === true) : undefined,
  );
}

/** The largest answer a client takes: 512 bytes plain UDP, its EDNS size capped at 1232, 64 KiB TCP. */
export function maxAnswerSize(x: DnsExchange): number {
  if (x.client.transport !== "udp") return 65_535;
  return x.query.edns ? Math.min(x.query.edns.udpSize, 1232) : 512;
}
