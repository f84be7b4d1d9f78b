import type { Config } from "../config/schema.js";
import type { AddressSet } from "../net/address.js";
import type { Stage } from "../pipeline/stage.js";
import type { RuleSet } from "../rules/ruleset.js";
import type { BlockInfo, DnsExchange, DnsOutcome } from "./exchange.js";
import type { LocalRecords } from "./local.js";
import { CLASS, RCODE, type ResourceRecord, type ResponseParts, rdataA, rdataAAAA, rdataHINFO, rdataTXT, TYPE } from "./wire.js";

type DnsStage = Stage<DnsExchange, DnsOutcome>;
type DnsConfig = Config["dns"];

const answer = (parts: ResponseParts, result: DnsOutcome["result"], blocked?: BlockInfo): Promise<DnsOutcome> =>
  Promise.resolve({ kind: "parts", parts, result, blocked });

const REFUSED: ResponseParts = { rcode: RCODE.REFUSED };
const NXDOMAIN: ResponseParts = { rcode: RCODE.NXDOMAIN };

/** Only office clients (dns.clients) may ask: others get REFUSED, so this is never an open resolver. */
export function aclStage(allowed: AddressSet): DnsStage {
  return {
    name: "acl",
    handle(x, next) {
      // The proxy's own lookups were checked against proxy.clients already; explain without a
      // client has nobody to check.
      const address = x.client.address;
      if (x.mode === "resolve" || address === undefined || allowed.has(address)) return next(x);
      x.decisions.push({ stage: "acl", action: "deny", reason: `client ${address} is not in dns.clients` });
      return answer(REFUSED, "refused");
    },
  };
}

export interface RateLimitOptions {
  /** Queries a second per client address; 0 = no limit. */
  perSecond: number;
  /** Every slip-th query over the limit gets an empty TC answer instead of nothing; 0 = drop all. */
  slip: number;
  warn: (fields: object, msg: string) => void;
  now: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
  /** Queries over the limit since the client was last under it. */
  over: number;
  warnedAt: number;
}

const MAX_BUCKETS = 100_000;
const WARN_EVERY_MS = 60_000;

/**
 * A token bucket per client address, for UDP only: a UDP source can be forged, a TCP client has
 * completed a handshake and is bounded by its connection's 64 pending queries. Over the limit a
 * query is dropped, except every `slip`-th, which gets an empty answer with TC set (as NSD's and
 * BIND's RRL slip): a real client behind the address retries over TCP and is answered, a forged
 * flood gets nothing larger than it sent. The start of limiting is logged once a minute per client.
 * One per resolver, shared by its stage and its fast path for cache hits, so a query is counted
 * once whichever way it is answered.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly o: RateLimitOptions) {}

  /** Takes a token for the query; undefined when it may go on, else its outcome (decision pushed). */
  check(x: DnsExchange): DnsOutcome | undefined {
    const o = this.o;
    if (o.perSecond === 0 || x.client.transport !== "udp") return undefined;
    const address = x.client.address as string;
    const now = o.now();
    let b = this.buckets.get(address);
    if (!b) {
      // A flood of forged sources must not grow this map without bound.
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
      b = { tokens: o.perSecond, at: now, over: 0, warnedAt: Number.NEGATIVE_INFINITY };
      this.buckets.set(address, b);
    }
    b.tokens = Math.min(o.perSecond, b.tokens + ((now - b.at) / 1000) * o.perSecond);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.over = 0;
      return undefined;
    }
    if (b.over++ === 0 && now - b.warnedAt >= WARN_EVERY_MS) {
      b.warnedAt = now;
      o.warn(
        { client: address, limit: o.perSecond },
        `DNS client ${address} is over dns.rateLimit (${o.perSecond} UDP queries a second): ` +
          `${o.slip > 0 ? `1 in ${o.slip} of the excess is answered with TC (retry over TCP), the rest dropped` : "the excess is dropped"}; ` +
          "raise dns.rateLimit if this address is a router with many clients behind it",
      );
    }
    x.decisions.push({ stage: "ratelimit", action: "deny", reason: `over ${o.perSecond} queries a second` });
    if (o.slip > 0 && b.over % o.slip === 0)
      return { kind: "parts", parts: { rcode: RCODE.NOERROR, truncated: true }, result: "ratelimited" };
    return { kind: "drop", result: "ratelimited" };
  }
}

export function rateLimitStage(limiter: RateLimiter): DnsStage {
  return {
    name: "ratelimit",
    handle(x, next) {
      const limited = limiter.check(x);
      return limited ? Promise.resolve(limited) : next(x);
    },
  };
}

/**
 * CHAOS-class identity queries (version.bind, version.server, id.server, hostname.bind) get the
 * configured text, or REFUSED when it is empty (the default: the version helps only an attacker).
 * Every other CHAOS query is REFUSED, never passed on to a content server.
 */
export function chaosStage(chaos: DnsConfig["chaos"]): DnsStage {
  const texts = new Map<string, string>([
    ["version.bind", chaos.version],
    ["version.server", chaos.version],
    ["id.server", chaos.id],
    ["hostname.bind", chaos.id],
  ]);
  return {
    name: "chaos",
    handle(x, next) {
      if (x.qclass !== CLASS.CH) return next(x);
      const text = x.type === TYPE.TXT || x.type === TYPE.ANY ? texts.get(x.name) : undefined;
      if (!text) {
        x.decisions.push({ stage: "chaos", action: "deny", reason: "CHAOS query not answered (dns.chaos)" });
        return answer(REFUSED, "refused");
      }
      x.decisions.push({ stage: "chaos", action: "answer", reason: `${x.name} answered from dns.chaos` });
      const record: ResourceRecord = { name: x.name, type: TYPE.TXT, class: CLASS.CH, ttl: 0, rdata: rdataTXT([text]) };
      return answer({ rcode: RCODE.NOERROR, authoritative: true, answers: [record] }, "local");
    },
  };
}

/**
 * What this resolver does not serve, answered before anything is spent on it: an EDNS version
 * other than 0 gets BADVERS (RFC 6891 §6.1.3), classes other than IN get REFUSED, zone transfers
 * get NOTIMP.
 */
export function unsupportedStage(): DnsStage {
  return {
    name: "unsupported",
    handle(x, next) {
      if (x.ednsVersion !== undefined && x.ednsVersion !== 0)
        return refuse(x, RCODE.BADVERS, `EDNS version ${x.ednsVersion}`, "formerr");
      if (x.qclass !== CLASS.IN) return refuse(x, RCODE.REFUSED, `class ${x.qclass}`, "refused");
      if (x.type === 251 || x.type === 252) return refuse(x, RCODE.NOTIMP, "zone transfer", "refused");
      return next(x);
    },
  };
}

function refuse(x: DnsExchange, rcode: number, what: string, result: DnsOutcome["result"]): Promise<DnsOutcome> {
  x.decisions.push({ stage: "unsupported", action: "deny", reason: `${what} not served` });
  return answer({ rcode }, result);
}

const PRIVATE_REVERSE = [
  "10.in-addr.arpa",
  ...Array.from({ length: 16 }, (_, i) => `${16 + i}.172.in-addr.arpa`),
  "168.192.in-addr.arpa",
  "127.in-addr.arpa",
  "254.169.in-addr.arpa",
  ...["c", "d"].map((n) => `${n}.f.ip6.arpa`),
  ...["8", "9", "a", "b"].map((n) => `${n}.e.f.ip6.arpa`),
];

/**
 * Names that must never leave the office (RFC 6761, RFC 6303): "localhost" answers loopback,
 * ".invalid" does not exist, and reverse lookups of private addresses that no local record or
 * dns.forward entry answers get NXDOMAIN here instead of leaking to the internet (dnsmasq's
 * bogus-priv, Unbound's default local zones).
 */
export function specialNamesStage(forwarded: (name: string) => boolean): DnsStage {
  return {
    name: "special",
    handle(x, next) {
      const n = x.name;
      if (n === "localhost" || n.endsWith(".localhost")) {
        const answers: ResourceRecord[] = [];
        if (x.type === TYPE.A) answers.push({ name: n, type: TYPE.A, ttl: 3600, rdata: rdataA("127.0.0.1") });
        if (x.type === TYPE.AAAA) answers.push({ name: n, type: TYPE.AAAA, ttl: 3600, rdata: rdataAAAA("::1") });
        x.decisions.push({ stage: "special", action: "answer", reason: "localhost is this machine (RFC 6761)" });
        return answer({ rcode: RCODE.NOERROR, authoritative: true, answers }, "local");
      }
      if (n === "invalid" || n.endsWith(".invalid")) {
        x.decisions.push({ stage: "special", action: "answer", reason: ".invalid never exists (RFC 6761)" });
        return answer(NXDOMAIN, "local");
      }
      if (n.endsWith(".arpa") && !forwarded(n) && PRIVATE_REVERSE.some((z) => n === z || n.endsWith(`.${z}`))) {
        x.decisions.push({ stage: "special", action: "answer", reason: "reverse lookup of a private address (RFC 6303)" });
        return answer(NXDOMAIN, "local");
      }
      return next(x);
    },
  };
}

/** RFC 8482: ANY gets one small synthesized HINFO record instead of everything (amplification). */
export function anyStage(): DnsStage {
  return {
    name: "any",
    handle(x, next) {
      if (x.type !== TYPE.ANY) return next(x);
      x.decisions.push({ stage: "any", action: "answer", reason: "ANY is answered minimally (RFC 8482)" });
      const hinfo: ResourceRecord = { name: x.name, type: TYPE.HINFO, ttl: 3600, rdata: rdataHINFO("RFC8482", "") };
      return answer({ rcode: RCODE.NOERROR, answers: [hinfo] }, "local");
    },
  };
}

export function localStage(records: () => LocalRecords): DnsStage {
  return {
    name: "local",
    handle(x, next) {
      const local = records().lookup(x.name, x.type);
      if (!local) return next(x);
      x.decisions.push({ stage: "local", action: "answer", reason: "local record", rule: local.ref });
      x.log.rule = local.ref;
      return answer(local, local.rcode === RCODE.SERVFAIL ? "error" : "local");
    },
  };
}

export interface WpadOptions {
  /** wpad.NAME for each office name (proxy.pac.direct). */
  names: ReadonlySet<string>;
  /** gatehouse's own address as the client reaches it. */
  address: (client: string, family: 4 | 6) => string | undefined;
}

/**
 * WPAD by DNS: a browser set to find its proxy automatically asks for wpad.<its domain> and loads
 * /wpad.dat from there, so those names answer with gatehouse's own address. Only office clients'
 * queries (the acl stage let them in); never the proxy's own lookups, which would loop back.
 */
export function wpadStage(o: WpadOptions): DnsStage {
  return {
    name: "wpad",
    handle(x, next) {
      const client = x.client.address;
      if (client === undefined || x.mode === "resolve" || !o.names.has(x.name)) return next(x);
      const answers: ResourceRecord[] = [];
      const family = x.type === TYPE.A ? 4 : x.type === TYPE.AAAA ? 6 : undefined;
      const address = family && o.address(client, family);
      if (address)
        answers.push({ name: x.name, type: x.type, ttl: 300, rdata: family === 4 ? rdataA(address) : rdataAAAA(address) });
      x.decisions.push({
        stage: "wpad",
        action: "answer",
        reason: "gatehouse's address for proxy auto-configuration (proxy.pac.wpad)",
      });
      return answer({ rcode: RCODE.NOERROR, authoritative: true, answers }, "local");
    },
  };
}

/** The same rules as the proxy: firewall (no port, method or path for DNS), then the lists. */
export function policyStage(rules: () => RuleSet, cfg: DnsConfig): DnsStage {
  return {
    name: "policy",
    handle(x, next) {
      const v = rules().policy({ client: x.client.address, host: x.name });
      if (v.action === "allow") {
        // Only an allow that a rule made is worth a line in "why did I get this?".
        if (v.rule) x.decisions.push({ stage: v.stage, action: "allow", reason: "allowed by a rule", rule: v.rule });
        return next(x);
      }
      x.decisions.push({ stage: v.stage, action: v.action, reason: `${x.name} is blocked`, rule: v.rule });
      x.log.rule = v.rule;
      return answer(blockedParts(x, cfg), "blocked", { name: x.name, stage: v.stage, rule: v.rule });
    },
  };
}

/**
 * A tracker hidden behind a CNAME (metrics.shop.example → shop.tracker.example) is blocked too:
 * every target in the answer's CNAME chain is checked, on every answer, cached ones included, so a
 * rule added later applies at once.
 */
export function cnameStage(rules: () => RuleSet, cfg: DnsConfig): DnsStage {
  return {
    name: "cname",
    async handle(x, next) {
      const outcome = await next(x);
      if (outcome.kind !== "upstream") return outcome;
      for (const target of outcome.answer.info.cnameTargets) {
        const v = rules().checkDomain(target);
        if (v.blocked) {
          x.decisions.push({ stage: "cname", action: "block", reason: `CNAME target ${target} is blocked`, rule: v.rule });
          x.log.rule = v.rule;
          return {
            kind: "parts",
            parts: blockedParts(x, cfg),
            result: "blocked",
            blocked: { name: target, stage: "cname", rule: v.rule },
          };
        }
      }
      return outcome;
    },
  };
}

/** The answer for a blocked name, as dns.blockMode says. */
function blockedParts(x: DnsExchange, cfg: DnsConfig): ResponseParts {
  if (cfg.blockMode === "nxdomain") return NXDOMAIN;
  if (cfg.blockMode === "refused") return REFUSED;
  const ttl = Math.floor(cfg.blockTtl / 1000);
  const v4 = cfg.blockMode === "address" ? cfg.blockAddress.find((a) => !a.includes(":")) : "0.0.0.0";
  const v6 = cfg.blockMode === "address" ? cfg.blockAddress.find((a) => a.includes(":")) : "::";
  const answers: ResourceRecord[] = [];
  if (x.type === TYPE.A && v4) answers.push({ name: x.name, type: TYPE.A, ttl, rdata: rdataA(v4) });
  if (x.type === TYPE.AAAA && v6) answers.push({ name: x.name, type: TYPE.AAAA, ttl, rdata: rdataAAAA(v6) });
  return { rcode: RCODE.NOERROR, answers };
}
