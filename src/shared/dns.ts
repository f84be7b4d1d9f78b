import { DnsCache } from "../dns/cache.js";
import type { DnsExchange, StoredAnswer } from "../dns/exchange.js";
import { storeableAnswer } from "../dns/scrub.js";
import { inspectAnswer, RCODE, readQuestion } from "../dns/wire.js";
import type { SharedRedis } from "./redis.js";

// Upstream answers shared between boxes. Only what a content server answered is written: local
// records, blocked answers and per-client decisions never are, and each box still applies its own
// rules to what it reads (the lookup takes the place of the upstream query, after every policy
// stage, and the CNAME stage checks the answer as it checks any other).
//
// A value is [8 bytes: epoch ms when stored][4 bytes: TTL then, seconds][the answer as scrubbed,
// every TTL at most the answer's lowest]; the key expires with that TTL (PX). A reader counts each
// TTL down by the seconds since, so an answer stored 100 s ago with 300 s goes out with 200 s.

export const DNS_PREFIX = "gatehouse:v1:dns:";
const HEADER = 12;
/** Larger answers are not shared (dns.cache.maxAnswer's default: the same reason, one huge answer). */
const MAX_SHARED_ANSWER = 16 * 1024;
/**
 * An answer with less than this share of its TTL left is not taken: the box's own prefetch asks
 * when an answer is this close to expiring, and would otherwise read back the copy it wrote.
 */
const MIN_LEFT = 0.1;

export function dnsKey(x: Pick<DnsExchange, "type" | "qclass" | "dnssecOk" | "name">): string {
  return DNS_PREFIX + DnsCache.key(x.type, x.qclass, x.dnssecOk, x.name);
}

/** The value stored for an upstream answer, or undefined when it is not to be shared. */
export function encodeAnswer(answer: StoredAnswer, now: number): { value: Buffer; ttl: number } | undefined {
  const { info, bytes } = answer;
  if (info.truncated || (info.rcode !== RCODE.NOERROR && info.rcode !== RCODE.NXDOMAIN)) return undefined;
  if (info.minTtl === undefined || info.minTtl <= 0 || bytes.length > MAX_SHARED_ANSWER) return undefined;
  const ttl = info.minTtl;
  const value = Buffer.allocUnsafe(HEADER + bytes.length);
  value.writeDoubleBE(now, 0);
  value.writeUInt32BE(ttl, 8);
  bytes.copy(value, HEADER);
  // Every TTL at most the lowest, so that counting them down by the same age keeps a negative
  // answer's TTL (min of the SOA's TTL and its MINIMUM field, which is not counted down) right.
  for (const off of info.ttlOffsets) if (value.readUInt32BE(HEADER + off) > ttl) value.writeUInt32BE(ttl, HEADER + off);
  return { value, ttl };
}

/**
 * The answer a value holds for this question, its TTLs counted down; undefined when it is not one
 * (another question, malformed: Redis is shared, so what it holds is checked like an upstream's
 * answer), or has too little of its TTL left.
 */
export function decodeAnswer(
  value: Buffer,
  x: Pick<DnsExchange, "type" | "qclass" | "name">,
  now: number,
): StoredAnswer | undefined {
  if (value.length < HEADER + 12) return undefined;
  const storedAt = value.readDoubleBE(0);
  const ttl = value.readUInt32BE(8);
  const age = Math.max(0, Math.floor((now - storedAt) / 1000));
  const left = ttl - age;
  if (left <= 0 || left < ttl * MIN_LEFT) return undefined;
  const bytes = Buffer.from(value.subarray(HEADER));
  try {
    if (bytes.readUInt16BE(4) !== 1) return undefined;
    const q = readQuestion(bytes, 12);
    if (q.name !== x.name || q.type !== x.type || q.class !== x.qclass) return undefined;
    for (const off of inspectAnswer(bytes).ttlOffsets) bytes.writeUInt32BE(Math.max(0, bytes.readUInt32BE(off) - age), off);
    return storeableAnswer(bytes, x.name);
  } catch {
    return undefined;
  }
}

/** The DNS side of the shared tier, for the resolver's miss path. */
export class SharedDns {
  constructor(
    private readonly redis: SharedRedis,
    private readonly now: () => number = Date.now,
  ) {}

  /** A shared answer for this question, or undefined (none, or Redis not up: then without waiting). */
  get(x: DnsExchange): Promise<StoredAnswer | undefined> | undefined {
    const key = dnsKey(x);
    const read = this.redis.read((r) => r.getBuffer(key));
    return read?.then((value) => (value ? decodeAnswer(value, x, this.now()) : undefined));
  }

  /** Shares an answer a content server just gave, in the background. */
  put(x: DnsExchange, answer: StoredAnswer): void {
    if (!this.redis.accepts()) return;
    const encoded = encodeAnswer(answer, this.now());
    if (!encoded) return;
    const key = dnsKey(x);
    this.redis.write((r) => r.set(key, encoded.value, "PX", encoded.ttl * 1000));
  }
}
