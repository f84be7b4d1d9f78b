import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { isDeepStrictEqual } from "node:util";
import type { Config } from "../config/schema.js";
import type { Events, QueryEvent } from "../events/events.js";
import type { Part } from "../lifecycle/part.js";
import { Tasks } from "../lifecycle/tasks.js";
import type { Logger } from "../log/logger.js";
import { AddressSet, isLoopback, type ListenAddress, parseHostPort, parseListen } from "../net/address.js";
import { compose, type Decision, type Handler, type RuleRef } from "../pipeline/stage.js";
import type { RuleSource } from "../rules/rules.js";
import type { RuleSet } from "../rules/ruleset.js";
import type { SharedDns } from "../shared/dns.js";
import { DnsCache, type FreshEntry } from "./cache.js";
import {
  type BlockInfo,
  type DnsClient,
  type DnsExchange,
  type DnsMode,
  type DnsOutcome,
  type DnsResult,
  encodeOutcome,
  type StoredAnswer,
} from "./exchange.js";
import { Forwarder, type UpstreamServer } from "./forwarder.js";
import { hostsFile, LocalRecords, zoneFiles } from "./local.js";
import {
  aclStage,
  anyStage,
  chaosStage,
  cnameStage,
  localStage,
  policyStage,
  RateLimiter,
  rateLimitStage,
  specialNamesStage,
  unsupportedStage,
  type WpadOptions,
  wpadStage,
} from "./stages.js";
import {
  addressOf,
  CLASS,
  describeAnswer,
  encodeName,
  type ParsedQuery,
  parseQuery,
  quickQuery,
  RCODE,
  readName,
  TYPE,
} from "./wire.js";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
  /** Seconds the address may still be used. */
  ttl: number;
}

/** What resolve() found, and why: the answer without any wire round trip. */
export interface Resolution {
  rcode: number;
  result: DnsResult;
  /** A and AAAA records of the type asked, at the end of the CNAME chain. */
  addresses: ResolvedAddress[];
  /** CNAME targets in the answer, in chain order. */
  cnames: string[];
  decisions: Decision[];
  /** Set whenever a rule blocked the name or a name in its CNAME chain, whatever dns.blockMode says. */
  blocked?: BlockInfo;
  /** The content server that answered, when one was asked for this very call. */
  upstream?: string;
}

/**
 * What explain() says about a question: the same stages as serving, in the same order, with the
 * same rules, local records and cache, but nothing is asked upstream and nothing is counted.
 *  - result: how a client would be answered now: "local", "blocked", "refused", "cached",
 *    "formerr"/"refused" for what is not served, or "forwarded" when no stage answers and the
 *    cache has nothing fresh (then `upstreams` says where it would go).
 *  - rcode: the answer's code when a stage or the cache answers; undefined for "forwarded".
 *  - addresses, cnames: the records of a local, blocked or cached answer (empty for "forwarded";
 *    a CNAME chain is only known, and checked against the rules, once an answer is cached).
 *  - decisions: each stage that decided something, in order, with its rule (file, line, text).
 *  - blocked: the name that was blocked (the one asked or a CNAME target), the stage and the rule.
 *  - upstreams: the servers that would be asked ("host:port"), after dns.forward.
 */
export interface Explanation {
  name: string;
  type: number;
  result: DnsResult;
  rcode: number | undefined;
  addresses: ResolvedAddress[];
  cnames: string[];
  decisions: Decision[];
  blocked?: BlockInfo;
  upstreams?: string[];
}

export interface ResolverOptions {
  cfg: Config["dns"];
  rules: RuleSource;
  log: Logger;
  /** Where each client query is reported (events.query), once, when answered or dropped. */
  events: Events;
  /** The resolver this one replaces: its cache is taken over when dns.cache is unchanged. */
  previous?: DnsResolver;
  /** Epoch milliseconds, for TTLs, the rate limit and upstream health; tests move it. */
  now?: () => number;
  /** WPAD names answered with gatehouse's own address (proxy.pac.wpad). */
  wpad?: WpadOptions;
  /** Upstream answers shared with other boxes (shared.redis), asked before the content servers. */
  shared?: SharedDns;
}

/**
 * The DNS pipeline, transport-free: the listeners, the proxy's name lookups and explain all go
 * through it. The order, with the reason for each place:
 * 1. acl: outsiders get REFUSED before anything else is spent on them (never an open resolver).
 * 2. ratelimit: a flooding client costs a map lookup, not a lookup in the rules or the cache.
 * 3. chaos, unsupported, any: identity queries (version.bind), EDNS versions, classes and zone
 *    transfers we do not serve, and ANY (RFC 8482), are answered here before they can reach an
 *    upstream or the cache.
 * 4. local: the office's own names come before the blocklist, so no imported list can hide them;
 *    then wpad.<office name> (proxy auto-configuration), after local records so one the office
 *    wrote wins, and before the lists, which often block wpad.* names of the internet; then
 *    localhost, .invalid and private reverse zones, which never go upstream (RFC 6761/6303).
 * 5. policy: firewall and lists, for the name asked.
 * 6. cname: wraps the cache, so names in a CNAME chain are checked on every answer, cached or not.
 * 7. cache: answers, collapses concurrent misses, prefetches, serves stale when upstreams fail.
 * Terminal: the answers other boxes shared (shared.redis), then the forwarder (conditional
 * forwarding, failover, TCP retry, scrubbing); for explain, a terminal that only says where the
 * question would go. The shared answers take the place of the upstream's, after every stage that
 * decides, so each box applies its own rules to them and only upstream answers are ever shared.
 *
 * Ahead of the chain, answerNow() answers a wire client's cache hit whose way through stages 3 to 6
 * is already known (see Known), checking only the ACL and the rate limit again.
 *
 * A Part: prepare subscribes to rule changes (local records), commit takes the previous resolver's
 * cache over, dispose unsubscribes, lets background refreshes and queries in flight finish, closes
 * the forwarder and drops the cache unless a successor took it.
 */
export class DnsResolver implements Part {
  readonly name = "dns";
  readonly cache: DnsCache;
  readonly forwarder: Forwarder;
  /** Background work (prefetches): failures are logged, dispose waits for it. */
  readonly tasks: Tasks;
  readonly cfg: Config["dns"];
  private local: LocalRecords;
  private unsubscribe: (() => void) | undefined;
  private ownsCache = true;
  /** Until commit: the resolver whose cache this one shares (and takes over at commit). */
  private previous: DnsResolver | undefined;
  private readonly inherited: boolean;
  private readonly serve: Handler<DnsExchange, DnsOutcome>;
  private readonly explainChain: Handler<DnsExchange, DnsOutcome>;
  private readonly rules: RuleSource;
  private readonly log: Logger;
  private readonly events: Events;
  private readonly now: () => number;
  private readonly allowed: AddressSet;
  private readonly limiter: RateLimiter;
  private readonly terminal: Handler<DnsExchange, DnsOutcome>;
  private readonly shared: SharedDns | undefined;
  /**
   * Per client address, then per quickQuery key: questions the chain let through to the cache,
   * under the rules generation and in the clock minute below (emptied when either moves on).
   */
  private known = new Map<string, Map<string, Known>>();
  private knownCount = 0;
  private knownGeneration = 0;
  /** Epoch ms (wall clock) when the minute `known` is for ends. */
  private knownUntil = 0;
  /** The rules and local records of `generation`, to see them change (see generation()). */
  private generationOf: { rules: RuleSet; local: LocalRecords } | undefined;
  private generationNumber = 0;

  constructor(o: ResolverOptions) {
    this.cfg = o.cfg;
    this.rules = o.rules;
    this.log = o.log;
    this.events = o.events;
    this.now = o.now ?? Date.now;
    this.previous = o.previous;
    this.shared = o.shared;
    this.tasks = new Tasks(o.log, "dns");
    this.inherited = o.previous !== undefined && isDeepStrictEqual(o.previous.cfg.cache, o.cfg.cache);
    this.cache = this.inherited ? (o.previous as DnsResolver).cache : new DnsCache(o.cfg.cache, this.now);
    const toServer = (text: string): UpstreamServer => {
      const hp = parseHostPort(text, 53) as { address: string; port: number };
      return { ...hp, label: hp.address.includes(":") ? `[${hp.address}]:${hp.port}` : `${hp.address}:${hp.port}` };
    };
    const defaults = (o.cfg.upstreams.length > 0 ? o.cfg.upstreams : systemNameservers(o.cfg.listen)).map(toServer);
    if (defaults.length === 0) o.log.warn("no upstream DNS servers: set dns.upstreams (names not answered locally will fail)");
    const forward = Object.fromEntries(Object.entries(o.cfg.forward).map(([d, list]) => [d, list.map(toServer)]));
    this.forwarder = new Forwarder(defaults, forward, o.cfg.timeout, this.now);
    this.local = this.buildLocal();
    this.allowed = new AddressSet(o.cfg.clients);
    this.limiter = new RateLimiter({
      perSecond: o.cfg.rateLimit,
      slip: o.cfg.rateLimitSlip,
      warn: (fields, msg) => this.log.warn(fields, msg),
      now: this.now,
    });
    const stages = [
      aclStage(this.allowed),
      rateLimitStage(this.limiter),
      chaosStage(o.cfg.chaos),
      unsupportedStage(),
      anyStage(),
      localStage(() => this.local),
      ...(o.wpad && o.wpad.names.size > 0 ? [wpadStage(o.wpad)] : []),
      specialNamesStage((name) => this.forwarder.forwardDomain(name) !== undefined),
      policyStage(() => this.rules.current, o.cfg),
      cnameStage(() => this.rules.current, o.cfg),
      this.cache.stage(this.tasks),
    ];
    this.terminal = (x) => this.forward(x);
    this.serve = compose(stages, this.terminal);
    this.explainChain = compose(stages, (x) => this.unasked(x));
  }

  async prepare(): Promise<void> {
    this.local = this.buildLocal();
    this.unsubscribe ??= this.rules.onChange(() => {
      this.local = this.buildLocal();
    });
  }

  commit(): void {
    if (this.inherited && this.previous) this.previous.ownsCache = false;
    // Never hold the replaced generation: twenty reloads must not keep twenty resolvers alive.
    this.previous = undefined;
  }

  async abort(): Promise<void> {
    await this.dispose();
  }

  async dispose(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.tasks.settle();
    await this.forwarder.close();
    // A cache taken over by the successor is its to keep; one inherited and never committed is the
    // previous resolver's, still serving.
    if (this.ownsCache && !(this.inherited && this.previous?.ownsCache)) this.cache.clear();
  }

  private buildLocal(): LocalRecords {
    return new LocalRecords(this.rules.values(hostsFile), this.rules.values(zoneFiles));
  }

  private async forward(x: DnsExchange): Promise<DnsOutcome> {
    const lookup = this.shared?.get(x);
    const shared = lookup && (await lookup);
    if (shared) {
      // In the query log: result "cached", upstream "shared" (another box asked a content server).
      x.log.upstream = SHARED_UPSTREAM;
      return { kind: "upstream", answer: shared, age: 0, result: "cached" };
    }
    const { answer, upstream } = await this.forwarder.resolve(x.name, x.type, x.qclass, x.client.transport === "tcp", x.dnssecOk);
    x.log.upstream = upstream;
    this.shared?.put(x, answer);
    return { kind: "upstream", answer, age: 0, result: "forwarded" };
  }

  private unasked(x: DnsExchange): Promise<DnsOutcome> {
    const servers = this.forwarder.serversFor(x.name).map((s) => s.label);
    const domain = this.forwarder.forwardDomain(x.name)?.[0];
    x.decisions.push({
      stage: "forward",
      action: "allow",
      reason: `not answered here: would be asked of ${servers.join(", ") || "no server (dns.upstreams is empty)"}${
        domain ? ` (dns.forward "${domain}")` : ""
      }`,
    });
    return Promise.resolve({ kind: "unasked", servers, result: "forwarded" });
  }

  /** Runs a chain; a failure (every upstream down, a CNAME loop) is SERVFAIL with its reason. */
  private async run(chain: Handler<DnsExchange, DnsOutcome>, x: DnsExchange): Promise<DnsOutcome> {
    try {
      return await chain(x);
    } catch (err) {
      return this.failed(x, err);
    }
  }

  private failed(x: DnsExchange, err: unknown): DnsOutcome {
    const reason = (err as Error).message;
    this.log.debug({ name: x.name, err: reason }, "DNS query failed");
    x.decisions.push({ stage: "forward", action: "answer", reason: `SERVFAIL: ${reason}` });
    return { kind: "parts", parts: { rcode: RCODE.SERVFAIL }, result: "error" };
  }

  private exchange(name: string, type: number, qclass: number, client: DnsClient, mode: DnsMode): DnsExchange {
    return { client, mode, name, type, qclass, dnssecOk: false, ednsVersion: undefined, decisions: [], log: {} };
  }

  /**
   * One query from the wire, answered at once when it can be: a cache hit for a client and question
   * that the stages let through to a cached answer before, under the rules, local records and
   * clock minute in force now (see Known). Only the ACL and the rate limit are checked again (one
   * fixed, the other counted per query); the answer, the event and the cache's counting are the
   * chain's own. undefined: not known, ask answer().
   */
  answerNow(wire: Buffer, client: { address: string; transport: "udp" | "tcp" }): Buffer | null | undefined {
    const started = performance.now();
    const generation = this.knownNow();
    // Nothing known (a stream of names asked once): not even the question is read.
    if (this.knownCount === 0) return undefined;
    const qq = quickQuery(wire);
    if (qq === undefined) return undefined;
    const known = this.known.get(client.address)?.get(qq.key);
    if (known === undefined) return undefined;
    if (!this.allowed.has(client.address)) return undefined;
    const hit = this.cache.fresh(known.cacheKey, this.now());
    if (hit === undefined) return undefined;
    // An answer with a CNAME chain the chain has not checked under these rules (a refresh, a new
    // fetch after expiry) goes through it.
    const { answer } = hit.entry;
    if (answer.info.cnameTargets.length > 0 && answer.cnamesAllowed !== generation) return undefined;
    const x: DnsExchange = {
      client,
      mode: "serve",
      name: known.name,
      type: known.type,
      qclass: CLASS.IN,
      dnssecOk: qq.edns?.do === true,
      ednsVersion: qq.edns?.version,
      decisions: [],
      log: {},
    };
    const outcome = this.limiter.check(x) ?? this.knownHit(x, known, hit);
    const q: ParsedQuery = {
      id: qq.id,
      flags: qq.flags,
      question: { name: known.name, type: known.type, class: CLASS.IN, end: qq.end },
      questionBytes: wire.subarray(12, qq.end),
      edns: qq.edns,
    };
    const bytes = encodeOutcome(q, outcome, client.transport);
    if (this.events.query.active) this.events.query.emit(this.queryEvent(x, outcome, bytes, performance.now() - started));
    return bytes;
  }

  /** A known question's cache hit: the decisions the chain made for it, and the cache's counting. */
  private knownHit(x: DnsExchange, known: Known, hit: FreshEntry): DnsOutcome {
    for (const d of known.decisions) x.decisions.push(d);
    if (known.rule) x.log.rule = known.rule;
    return this.cache.served(known.cacheKey, hit, () => ({ ...x, decisions: [], log: {} }), this.terminal, this.tasks);
  }

  /** One query from the wire, through every stage; null means no answer at all (dropped). */
  async answer(wire: Buffer, client: { address: string; transport: "udp" | "tcp" }): Promise<Buffer | null> {
    const started = performance.now();
    const q = parseQuery(wire);
    if ("drop" in q) {
      // Not a query whose question can be read: no event (a fuzzer's flood would fill the log).
      if (q.drop) return null;
      this.log.debug({ client: client.address, reason: q.reason }, "malformed DNS query");
      return errorHeader(wire, q.rcode);
    }
    const x: DnsExchange = {
      client,
      mode: "serve",
      name: q.question.name,
      type: q.question.type,
      qclass: q.question.class,
      dnssecOk: q.edns?.do === true,
      ednsVersion: q.edns?.version,
      decisions: [],
      log: {},
    };
    // What the stages' way depends on, taken before they run (see Known).
    const generation = this.generation();
    const until = minuteEnd(Date.now());
    let outcome: DnsOutcome;
    // Inline rather than through run(): one async frame less on every query.
    try {
      outcome = await this.serve(x);
    } catch (err) {
      outcome = this.failed(x, err);
    }
    if (outcome.kind === "upstream" && (outcome.result === "cached" || outcome.result === "forwarded"))
      this.remember(wire, x, outcome, generation, until);
    const bytes = encodeOutcome(q, outcome, client.transport);
    if (this.events.query.active) this.events.query.emit(this.queryEvent(x, outcome, bytes, performance.now() - started));
    return bytes;
  }

  /**
   * A number for the rules and local records in force, new whenever either is replaced (both are
   * rebuilt whole on any change) and never reused, even by another resolver sharing the cache.
   */
  private generation(): number {
    const g = this.generationOf;
    const rules = this.rules.current;
    if (g === undefined || g.rules !== rules || g.local !== this.local) {
      this.generationOf = { rules, local: this.local };
      this.generationNumber = ++generations;
    }
    return this.generationNumber;
  }

  /** The generation in force; `known` emptied first if it is of another one or another minute. */
  private knownNow(): number {
    const generation = this.generation();
    const now = Date.now();
    if (generation !== this.knownGeneration || now >= this.knownUntil) this.forget(generation, minuteEnd(now));
    return generation;
  }

  private forget(generation: number, until: number): void {
    this.known = new Map();
    this.knownCount = 0;
    this.knownGeneration = generation;
    this.knownUntil = until;
  }

  /**
   * The chain let this question through to an upstream answer under `generation`, in the minute
   * ending at `until`. A cached one is remembered for answerNow: a name is answered ahead of the
   * chain from its third query on, so a stream of names asked once (misses) costs nothing here.
   */
  private remember(
    wire: Buffer,
    x: DnsExchange,
    outcome: Extract<DnsOutcome, { kind: "upstream" }>,
    generation: number,
    until: number,
  ): void {
    // Rules, local records or the minute changed while the query was upstream or queued: what
    // the chain decided may not hold now.
    if (generation !== this.knownNow() || until !== this.knownUntil) return;
    // The CNAME stage passed this answer under these rules (a block is not an upstream outcome).
    outcome.answer.cnamesAllowed = generation;
    const address = x.client.address;
    if (outcome.result !== "cached" || address === undefined || x.qclass !== CLASS.IN) return;
    // A question the quick reader does not read is never looked for.
    const qq = quickQuery(wire);
    if (qq === undefined) return;
    // Far more than an office's clients times names in one minute: start over rather than grow.
    if (this.knownCount >= MAX_KNOWN) this.forget(generation, until);
    let forClient = this.known.get(address);
    if (forClient === undefined) {
      forClient = new Map();
      this.known.set(address, forClient);
    }
    if (!forClient.has(qq.key)) this.knownCount++;
    forClient.set(qq.key, {
      name: x.name,
      type: x.type,
      cacheKey: DnsCache.key(x.type, x.qclass, x.dnssecOk, x.name),
      decisions: [...x.decisions],
      rule: x.log.rule,
    });
  }

  private queryEvent(x: DnsExchange, outcome: DnsOutcome, bytes: Buffer | null, ms: number): QueryEvent {
    return new AnsweredQuery(this.now(), x, outcome.result, bytes, ms, outcome.kind === "upstream" ? outcome.answer : undefined);
  }

  /**
   * For the proxy: a name's addresses of one type through this same pipeline (local records,
   * blocking with CNAME chains, the cache), as values. `client`, when given, is who the lookup is
   * for, so firewall rules with "from" apply as they do to that client's own queries. No event is
   * emitted: the proxy reports the request itself.
   */
  async resolve(name: string, type: number, client?: { address: string }): Promise<Resolution> {
    const canonical = name.toLowerCase().replace(/\.$/, "");
    const x = this.exchange(canonical, type, CLASS.IN, { address: client?.address, transport: "internal" }, "resolve");
    if (!isEncodable(canonical)) {
      x.decisions.push({ stage: "resolve", action: "deny", reason: `"${name}" is not a valid DNS name` });
      return { rcode: RCODE.FORMERR, result: "formerr", addresses: [], cnames: [], decisions: x.decisions };
    }
    const outcome = await this.run(this.serve, x);
    return { ...records(outcome, type), decisions: x.decisions, blocked: blockedOf(outcome), upstream: x.log.upstream };
  }

  /** What serving would do with this question now, without asking upstream; see Explanation. */
  async explain(name: string, type: number, client?: string): Promise<Explanation> {
    const canonical = name.toLowerCase().replace(/\.$/, "");
    const x = this.exchange(canonical, type, CLASS.IN, { address: client, transport: "internal" }, "explain");
    const outcome = await this.run(this.explainChain, x);
    const base = { name: canonical, type, decisions: x.decisions, blocked: blockedOf(outcome) };
    if (outcome.kind === "unasked") {
      return { ...base, result: "forwarded", rcode: undefined, addresses: [], cnames: [], upstreams: [...outcome.servers] };
    }
    return { ...base, ...records(outcome, type) };
  }
}

/** Where a query log line says an answer came from when another box shared it (shared.redis). */
export const SHARED_UPSTREAM = "shared";

// Decisions are kept for the clock minute they were made in: firewall rules with "at" and "on" read
// the wall clock to the minute (boundaries are whole minutes in every time zone).
const MINUTE = 60_000;
// Questions remembered for answerNow, over every client, in one minute.
const MAX_KNOWN = 100_000;

/** Epoch ms when the wall-clock minute of `ms` ends. */
const minuteEnd = (ms: number): number => (Math.floor(ms / MINUTE) + 1) * MINUTE;
/** The last rules generation numbered, over every resolver (they may share one cache). */
let generations = 0;

/**
 * A question a client asked that stages 1 to 6 let through to a cached answer. What that way
 * depended on: the ACL (fixed per resolver, checked again anyway), the rate limit (counted again on
 * every query), the rules and local records (their generation) and the wall clock's minute
 * (firewall time rules), for which `known` as a whole is kept; the client address (firewall
 * "from") and the question itself (name, type, class, DO; an EDNS version other than 0 is never
 * read quickly), its keys. CHAOS, ANY, zone transfers, local, WPAD and special names never reach
 * the cache, so they are never remembered. The CNAME chain depends on the answer too:
 * StoredAnswer.cnamesAllowed. Neither the answer nor the rules are held here, so replaced rules and
 * evicted answers are not kept alive.
 */
interface Known {
  name: string;
  type: number;
  cacheKey: string;
  decisions: readonly Decision[];
  rule: RuleRef | undefined;
}

/**
 * A query event for a wire client. The answer summary walks the answer's records, which a sink that
 * does not print it (a metric, a dashboard counter) should not pay for on every query: it is made
 * on first read.
 */
class AnsweredQuery implements QueryEvent {
  readonly client: string;
  readonly proto: "udp" | "tcp";
  readonly name: string;
  readonly type: number;
  readonly rcode: number;
  readonly upstream: string | undefined;
  readonly rule: RuleRef | undefined;
  readonly decisions: readonly Decision[];
  private summary: string | undefined;

  constructor(
    readonly time: number,
    x: DnsExchange,
    readonly result: DnsResult,
    private readonly bytes: Buffer | null,
    readonly ms: number,
    /** The cached or forwarded answer `bytes` were made from, if any. */
    private readonly stored: StoredAnswer | undefined,
  ) {
    this.client = x.client.address as string;
    this.proto = x.client.transport === "tcp" ? "tcp" : "udp";
    this.name = x.name;
    this.type = x.type;
    this.rcode = bytes ? bytes.readUInt16BE(2) & 0xf : -1;
    this.upstream = x.log.upstream;
    this.rule = x.log.rule;
    this.decisions = x.decisions;
  }

  get answer(): string {
    if (this.summary === undefined) this.summary = this.describe();
    return this.summary;
  }

  private describe(): string {
    const { bytes, stored } = this;
    if (!bytes) return "-";
    try {
      // An upstream answer sent whole has the stored answer section: its summary is made once.
      if (stored && ((bytes[2] as number) & 0x02) === 0 && ((stored.bytes[2] as number) & 0x02) === 0)
        return (stored.summary ??= describeAnswer(stored.bytes).answer);
      return describeAnswer(bytes).answer;
    } catch {
      return "(unreadable)";
    }
  }
}

function blockedOf(outcome: DnsOutcome): BlockInfo | undefined {
  return outcome.kind === "parts" ? outcome.blocked : undefined;
}

/** The records of an outcome, read directly: no wire encoding. */
function records(outcome: DnsOutcome, type: number): Pick<Resolution, "rcode" | "result" | "addresses" | "cnames"> {
  const family = type === TYPE.AAAA ? 6 : 4;
  if (outcome.kind === "upstream") {
    const { info } = outcome.answer;
    const addresses = info.addresses
      .filter((a) => a.family === family && (type === TYPE.A || type === TYPE.AAAA))
      .map((a) => ({ ...a, ttl: outcome.staleTtl ?? Math.max(0, a.ttl - outcome.age) }));
    return { rcode: info.rcode, result: outcome.result, addresses, cnames: [...info.cnameTargets] };
  }
  if (outcome.kind === "parts") {
    const addresses: ResolvedAddress[] = [];
    const cnames: string[] = [];
    for (const r of outcome.parts.answers ?? []) {
      if (r.type === TYPE.CNAME) cnames.push(readName(r.rdata, 0).name);
      else if (r.type === type) {
        const address = addressOf(r.type, r.rdata);
        if (address) addresses.push({ address, family, ttl: r.ttl });
      }
    }
    return { rcode: outcome.parts.rcode, result: outcome.result, addresses, cnames };
  }
  return { rcode: RCODE.SERVFAIL, result: outcome.result, addresses: [], cnames: [] };
}

function isEncodable(name: string): boolean {
  try {
    encodeName(name);
    return true;
  } catch {
    return false;
  }
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
