import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log/logger.js";
import { isLoopback, type ListenAddress, parseHostPort, parseListen } from "../net/address.js";
import { compose, type Handler } from "../pipeline/stage.js";
import type { Rules } from "../rules/rules.js";
import { DnsCache } from "./cache.js";
import {
  adaptAnswer,
  type DnsClient,
  type DnsExchange,
  type DnsOutcome,
  fitMessage,
  maxAnswerSize,
  type StoredAnswer,
} from "./exchange.js";
import { Forwarder, type UpstreamServer } from "./forwarder.js";
import { hostsFile, LocalRecords, zoneFiles } from "./local.js";
import type { QueryLog } from "./query-log.js";
import {
  aclStage,
  anyStage,
  cnameStage,
  localStage,
  policyStage,
  rateLimitStage,
  specialNamesStage,
  unsupportedStage,
} from "./stages.js";
import { buildQuery, buildResponse, inspectAnswer, parseQuery, RCODE } from "./wire.js";

/**
 * The DNS pipeline, transport-free: the listeners and the proxy's name lookups both go through it.
 * The order, with the reason for each place:
 * 1. acl: outsiders get REFUSED before anything else is spent on them (never an open resolver).
 * 2. ratelimit: a flooding client costs a map lookup, not a lookup in the rules or the cache.
 * 3. unsupported, any: EDNS versions, classes and zone transfers we do not serve, and ANY (RFC 8482),
 *    are answered here before they can reach an upstream or the cache.
 * 4. local: the office's own names come before the blocklist, so no imported list can hide them;
 *    then localhost, .invalid and private reverse zones, which never go upstream (RFC 6761/6303).
 * 5. policy: firewall and lists, for the name asked.
 * 6. cname: wraps the cache, so names in a CNAME chain are checked on every answer, cached or not.
 * 7. cache: answers, collapses concurrent misses, prefetches, serves stale when upstreams fail.
 * Terminal: the forwarder (conditional forwarding, failover, TCP retry).
 */
export class DnsResolver {
  readonly cache: DnsCache;
  readonly forwarder: Forwarder;
  private local: LocalRecords;
  private readonly handle: Handler<DnsExchange, DnsOutcome>;

  constructor(
    readonly cfg: Config["dns"],
    private readonly rules: Rules,
    private readonly log: Logger,
    private readonly queryLog: QueryLog,
    previousCache?: DnsCache,
  ) {
    this.cache = previousCache ?? new DnsCache(cfg.cache);
    const toServer = (text: string): UpstreamServer => {
      const hp = parseHostPort(text, 53) as { address: string; port: number };
      return { ...hp, label: hp.address.includes(":") ? `[${hp.address}]:${hp.port}` : `${hp.address}:${hp.port}` };
    };
    const defaults = (cfg.upstreams.length > 0 ? cfg.upstreams : systemNameservers(cfg.listen)).map(toServer);
    if (defaults.length === 0) log.warn("no upstream DNS servers: set dns.upstreams (names not answered locally will fail)");
    const forward = Object.fromEntries(Object.entries(cfg.forward).map(([d, list]) => [d, list.map(toServer)]));
    this.forwarder = new Forwarder(defaults, forward, cfg.timeout);
    this.local = this.buildLocal();
    rules.onChange(() => {
      this.local = this.buildLocal();
    });
    this.handle = compose(
      [
        aclStage(cfg.clients),
        rateLimitStage(cfg.rateLimit),
        unsupportedStage(),
        anyStage(),
        localStage(() => this.local),
        specialNamesStage((name) => this.forwarder.serversFor(name) !== this.forwarder.defaultServers),
        policyStage(() => this.rules.current, cfg),
        cnameStage(() => this.rules.current, cfg),
        this.cache.stage(),
      ],
      (x) => this.forward(x),
    );
  }

  private buildLocal(): LocalRecords {
    return new LocalRecords(this.rules.values(hostsFile), this.rules.values(zoneFiles));
  }

  private async forward(x: DnsExchange): Promise<DnsOutcome> {
    const dnssec = x.query.edns?.do === true;
    const { bytes, upstream } = await this.forwarder.resolve(x.name, x.type, x.qclass, x.client.transport === "tcp", dnssec);
    x.log.upstream = upstream;
    return { kind: "upstream", answer: storeable(bytes), age: 0, result: "forwarded" };
  }

  /** One query from the wire; null means no answer at all (dropped). */
  async answer(wire: Buffer, client: DnsClient): Promise<Buffer | null> {
    const started = performance.now();
    const parsed = parseQuery(wire);
    if ("drop" in parsed) {
      if (parsed.drop) return null;
      this.log.debug({ client: client.address, reason: parsed.reason }, "malformed DNS query");
      return errorHeader(wire, parsed.rcode);
    }
    const x: DnsExchange = {
      client,
      query: parsed,
      name: parsed.question.name,
      type: parsed.question.type,
      qclass: parsed.question.class,
      decisions: [],
      log: {},
    };
    let outcome: DnsOutcome;
    try {
      outcome = await this.handle(x);
    } catch (err) {
      this.log.debug({ name: x.name, err: (err as Error).message }, "DNS query failed");
      outcome = { kind: "message", bytes: errorResponse(x, RCODE.SERVFAIL), result: "error" };
    }
    const max = maxAnswerSize(x);
    const bytes =
      outcome.kind === "drop"
        ? null
        : outcome.kind === "message"
          ? fitMessage(x, outcome.bytes, max)
          : adaptAnswer(x, outcome, max);
    this.queryLog.write(x, outcome, bytes, performance.now() - started);
    return bytes;
  }

  /** For the proxy: the addresses of a name through this same pipeline. */
  async addresses(name: string, family: 4 | 6): Promise<{ addresses: string[]; blocked: boolean; rcode: number }> {
    const query = buildQuery(0, name, family === 4 ? 1 : 28, 1);
    // The query has an OPT record; internal answers have no size limit anyway.
    const bytes = await this.answer(query, { address: "127.0.0.1", transport: "internal" });
    if (!bytes) return { addresses: [], blocked: false, rcode: RCODE.SERVFAIL };
    const info = inspectAnswer(bytes);
    const addresses = info.addresses.filter((a) => a.family === family).map((a) => a.address);
    const blocked = addresses.length > 0 && addresses.every((a) => a === "0.0.0.0" || a === "::");
    return { addresses, blocked, rcode: info.rcode };
  }
}

/** An upstream answer as the cache keeps it: without its OPT record, and walked once. */
function storeable(bytes: Buffer): StoredAnswer {
  let info = inspectAnswer(bytes);
  let clean = bytes;
  if (info.opt) {
    clean = Buffer.concat([bytes.subarray(0, info.opt.start), bytes.subarray(info.opt.end)]);
    clean.writeUInt16BE(clean.readUInt16BE(10) - 1, 10);
    info = inspectAnswer(clean);
  }
  return { bytes: clean, info };
}

function errorResponse(x: DnsExchange, rcode: number): Buffer {
  return buildResponse(x.query, { rcode }, 1232);
}

/** FORMERR or NOTIMP for a query whose question could not be read: the header alone. */
function errorHeader(wire: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(wire.readUInt16BE(0), 0);
  out.writeUInt16BE(0x8000 | (wire.readUInt16BE(2) & 0x7900) | 0x0080 | rcode, 2);
  return out;
}

/** The nameservers of /etc/resolv.conf, less gatehouse itself. */
export function systemNameservers(listen: readonly string[], path = "/etc/resolv.conf"): string[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const ours = listen.map(parseListen).filter((a): a is ListenAddress => typeof a !== "string");
  const servers: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m || isIP(m[1] as string) === 0) continue;
    const address = m[1] as string;
    const self = ours.some((o) => o.port === 53 && (o.host === undefined ? isLoopback(address) : o.host === address));
    if (!self) servers.push(address);
  }
  return servers;
}
