import type { Config } from "../config/schema.js";
import { AddressSet } from "../net/address.js";
import type { Stage } from "../pipeline/stage.js";
import type { RuleSet } from "../rules/ruleset.js";
import type { DnsExchange, DnsOutcome } from "./exchange.js";
import type { LocalRecords } from "./local.js";
import { buildResponse, RCODE, type ResourceRecord, rdataA, rdataAAAA, rdataHINFO, TYPE } from "./wire.js";

type DnsStage = Stage<DnsExchange, DnsOutcome>;

const respond = (bytes: Buffer, result: DnsOutcome["result"]): Promise<DnsOutcome> =>
  Promise.resolve({ kind: "message", bytes, result });

/** Only office clients may ask: others get REFUSED, so this is never an open resolver. */
export function aclStage(clients: readonly string[]): DnsStage {
  const allowed = new AddressSet(clients);
  return {
    name: "acl",
    handle(x, next) {
      if (x.client.transport === "internal" || allowed.has(x.client.address)) return next(x);
      x.decisions.push({ stage: "acl", action: "deny", reason: "client not in dns.clients" });
      return respond(buildResponse(x.query, { rcode: RCODE.REFUSED }, 1232), "refused");
    },
  };
}

/** A token bucket per client: a flood is dropped (UDP) or refused (TCP), not answered. */
export function rateLimitStage(perSecond: number): DnsStage {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    name: "ratelimit",
    handle(x, next) {
      if (perSecond === 0 || x.client.transport === "internal") return next(x);
      const now = Date.now();
      let b = buckets.get(x.client.address);
      if (!b) {
        if (buckets.size > 100_000) buckets.clear();
        b = { tokens: perSecond, at: now };
        buckets.set(x.client.address, b);
      }
      b.tokens = Math.min(perSecond, b.tokens + ((now - b.at) / 1000) * perSecond);
      b.at = now;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return next(x);
      }
      x.decisions.push({ stage: "ratelimit", action: "deny", reason: `over ${perSecond} queries a second` });
      if (x.client.transport === "udp") return Promise.resolve({ kind: "drop", result: "ratelimited" });
      return respond(buildResponse(x.query, { rcode: RCODE.REFUSED }, 1232), "ratelimited");
    },
  };
}

/**
 * What this resolver does not serve, answered before anything is spent on it: an EDNS version
 * other than 0 gets BADVERS (RFC 6891 §6.1.3), classes other than IN get REFUSED (CHAOS queries
 * like version.bind are not passed to content servers), zone transfers get NOTIMP.
 */
export function unsupportedStage(): DnsStage {
  return {
    name: "unsupported",
    handle(x, next) {
      if (x.query.edns && x.query.edns.version !== 0)
        return respond(buildResponse(x.query, { rcode: RCODE.BADVERS }, 1232), "formerr");
      if (x.qclass !== 1) return respond(buildResponse(x.query, { rcode: RCODE.REFUSED }, 1232), "refused");
      if (x.type === 251 || x.type === 252) return respond(buildResponse(x.query, { rcode: RCODE.NOTIMP }, 1232), "refused");
      return next(x);
    },
  };
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
        return respond(buildResponse(x.query, { rcode: RCODE.NOERROR, authoritative: true, answers }, 1232), "local");
      }
      if (n === "invalid" || n.endsWith(".invalid"))
        return respond(buildResponse(x.query, { rcode: RCODE.NXDOMAIN }, 1232), "local");
      if (n.endsWith(".arpa") && !forwarded(n) && PRIVATE_REVERSE.some((z) => n === z || n.endsWith(`.${z}`))) {
        return respond(buildResponse(x.query, { rcode: RCODE.NXDOMAIN }, 1232), "local");
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
      const hinfo: ResourceRecord = { name: x.name, type: TYPE.HINFO, ttl: 3600, rdata: rdataHINFO("RFC8482", "") };
      return respond(buildResponse(x.query, { rcode: RCODE.NOERROR, answers: [hinfo] }, 1232), "local");
    },
  };
}

export function localStage(records: () => LocalRecords): DnsStage {
  return {
    name: "local",
    handle(x, next) {
      const answer = records().lookup(x.name, x.type);
      if (!answer) return next(x);
      x.decisions.push({ stage: "local", action: "answer", reason: "local record", rule: answer.ref });
      x.log.rule = answer.ref;
      return respond(buildResponse(x.query, answer, 1232), "local");
    },
  };
}

/** The same rules as the proxy: firewall (no port, method or path for DNS), then the lists. */
export function policyStage(rules: () => RuleSet, cfg: Config["dns"]): DnsStage {
  return {
    name: "policy",
    handle(x, next) {
      const v = rules().policy({
        client: x.client.transport === "internal" ? undefined : x.client.address,
        host: x.name,
      });
      if (v.action === "allow") return next(x);
      x.decisions.push({ stage: v.stage, action: v.action, reason: "blocked", rule: v.rule });
      x.log.rule = v.rule;
      return respond(blockedAnswer(x, cfg), "blocked");
    },
  };
}

/**
 * A tracker hidden behind a CNAME (metrics.shop.example → shop.tracker.example) is blocked too:
 * every target in the answer's CNAME chain is checked, on every answer, cached ones included, so a
 * rule added later applies at once.
 */
export function cnameStage(rules: () => RuleSet, cfg: Config["dns"]): DnsStage {
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
          return { kind: "message", bytes: blockedAnswer(x, cfg), result: "blocked" };
        }
      }
      return outcome;
    },
  };
}

export function blockedAnswer(x: DnsExchange, cfg: Config["dns"]): Buffer {
  if (cfg.blockMode === "nxdomain") return buildResponse(x.query, { rcode: RCODE.NXDOMAIN }, 1232);
  if (cfg.blockMode === "refused") return buildResponse(x.query, { rcode: RCODE.REFUSED }, 1232);
  const ttl = Math.floor(cfg.blockTtl / 1000);
  const v4 = cfg.blockMode === "address" ? cfg.blockAddress.find((a) => !a.includes(":")) : "0.0.0.0";
  const v6 = cfg.blockMode === "address" ? cfg.blockAddress.find((a) => a.includes(":")) : "::";
  const answers: ResourceRecord[] = [];
  if (x.type === TYPE.A && v4) answers.push({ name: x.name, type: TYPE.A, ttl, rdata: rdataA(v4) });
  if (x.type === TYPE.AAAA && v6) answers.push({ name: x.name, type: TYPE.AAAA, ttl, rdata: rdataAAAA(v6) });
  return buildResponse(x.query, { rcode: RCODE.NOERROR, answers }, 1232);
}
