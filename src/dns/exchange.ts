import type { Decision, RuleRef } from "../pipeline/stage.js";
import { type AnswerInfo, buildResponse, optRecord, type ParsedQuery, type ResponseParts, truncatedResponse } from "./wire.js";

export interface DnsClient {
  /** undefined: no client is known (explain without --client); rules with "from" do not match. */
  address: string | undefined;
  transport: "udp" | "tcp" | "internal";
}

/**
 * Why the query runs: "serve" for a client on the wire (every stage applies), "resolve" for the
 * proxy's own lookups (no ACL or rate limit: the proxy checked proxy.clients itself), "explain" for
 * `gatehouse explain` (the same stages, a cache that is only looked at, and nothing asked upstream).
 */
export type DnsMode = "serve" | "resolve" | "explain";

/** One query as it passes the DNS stages: no wire bytes, so the proxy and explain use it too. */
export interface DnsExchange {
  readonly client: DnsClient;
  readonly mode: DnsMode;
  /** Lower-cased question name in presentation form (see readName), no trailing dot. */
  readonly name: string;
  readonly type: number;
  readonly qclass: number;
  /** The client's EDNS DO bit: DNSSEC records, and cache entries of their own. */
  readonly dnssecOk: boolean;
  /** The client's EDNS version, undefined without EDNS. */
  readonly ednsVersion: number | undefined;
  readonly decisions: Decision[];
  readonly log: { upstream?: string; rule?: RuleRef };
}

/** An upstream answer as stored: scrubbed, no OPT record, TTLs clamped, plus what was learnt walking it. */
export interface StoredAnswer {
  bytes: Buffer;
  info: AnswerInfo;
  /**
   * The rules generation (DnsResolver) under which the CNAME stage last found no target of this
   * answer blocked; 0: never. A number, not the rule set: a cached answer must not keep replaced
   * rules alive.
   */
  cnamesAllowed: number;
  /** The query log's summary of the answer section (describeAnswer), made on first use. */
  summary: string | undefined;
}

/** Which name was blocked (the one asked, or one in its CNAME chain), by which stage and rule. */
export interface BlockInfo {
  name: string;
  stage: string;
  rule?: RuleRef;
}

export type DnsOutcome =
  /** An answer made here (local, blocked, refused, errors): encoded only for wire clients. */
  | { kind: "parts"; parts: ResponseParts; result: DnsResult; blocked?: BlockInfo }
  /** An upstream answer, `age` seconds old, adapted to the client on the way out. */
  | { kind: "upstream"; answer: StoredAnswer; age: number; result: DnsResult; staleTtl?: number }
  /** explain only: no stage answered and the cache has nothing; these servers would be asked. */
  | { kind: "unasked"; servers: readonly string[]; result: "forwarded" }
  | { kind: "drop"; result: DnsResult };

export type DnsResult = "local" | "blocked" | "cached" | "forwarded" | "stale" | "refused" | "error" | "ratelimited" | "formerr";

/** The bytes a wire client receives for an outcome, or null for none. */
export function encodeOutcome(q: ParsedQuery, outcome: DnsOutcome, transport: DnsClient["transport"]): Buffer | null {
  const max = maxAnswerSize(q, transport);
  switch (outcome.kind) {
    case "upstream":
      return adaptAnswer(q, outcome, max);
    case "parts":
      return fitMessage(q, buildResponse(q, outcome.parts, 1232), max);
    default:
      return null;
  }
}

/**
 * The bytes a client receives for an upstream answer: its own ID and question bytes (0x20 case),
 * TTLs counted down by the answer's age, our OPT record if it sent one, and TC when it does not fit.
 */
function adaptAnswer(q: ParsedQuery, outcome: Extract<DnsOutcome, { kind: "upstream" }>, maxSize: number): Buffer {
  const { bytes, info } = outcome.answer;
  const withOpt = q.edns !== undefined;
  const out = Buffer.allocUnsafe(bytes.length + (withOpt ? 11 : 0));
  bytes.copy(out, 0);
  out.writeUInt16BE(q.id, 0);
  // QR, the upstream's opcode and rcode, RA; the client's RD; never AA (this is a cached copy);
  // AD only for clients that asked for DNSSEC (DO).
  const keep = q.edns?.do ? 0xfbaf : 0xfb8f;
  out.writeUInt16BE((bytes.readUInt16BE(2) & keep & ~0x0100) | 0x8080 | (q.flags & 0x0100), 2);
  q.questionBytes.copy(out, 12);
  const age = outcome.age;
  for (const off of info.ttlOffsets) {
    const ttl = outcome.staleTtl ?? Math.max(0, bytes.readUInt32BE(off) - age);
    out.writeUInt32BE(ttl, off);
  }
  if (withOpt) {
    ourOpt(q).copy(out, bytes.length);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  if (out.length <= maxSize) return out;
  return truncatedResponse(out, 12 + q.questionBytes.length, withOpt ? ourOpt(q) : undefined);
}

// Our OPT record on answers that are not built here (buildResponse makes its own, with the rcode's
// high bits): read-only, copied into each answer.
const OPT = optRecord(1232, false);
const OPT_DO = optRecord(1232, true);
const ourOpt = (q: ParsedQuery): Buffer => (q.edns?.do ? OPT_DO : OPT);

/** A message built here, cut to header and question with TC when it does not fit. */
function fitMessage(q: ParsedQuery, bytes: Buffer, maxSize: number): Buffer {
  if (bytes.length <= maxSize) return bytes;
  const withOpt = q.edns !== undefined;
  return truncatedResponse(bytes, 12 + q.questionBytes.length, withOpt ? ourOpt(q) : undefined);
}

/** The largest answer a client takes: 512 bytes plain UDP, its EDNS size capped at 1232, 64 KiB TCP. */
function maxAnswerSize(q: ParsedQuery, transport: DnsClient["transport"]): number {
  if (transport !== "udp") return 65_535;
  return q.edns ? Math.min(q.edns.udpSize, 1232) : 512;
}
