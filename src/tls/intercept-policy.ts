import { isIP } from "node:net";
import { LRUCache } from "lru-cache";
import { AddressSet, isAddressOrCidr } from "../net/address.js";
import type { RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "../rules/domain.js";
import type { RuleSet } from "../rules/ruleset.js";

export interface InterceptDecision {
  intercept: boolean;
  /** Why, for the log and `explain`: "listed in proxy.intercept", "rules/no-intercept.txt:4"... */
  reason: string;
  rule?: RuleRef;
}

/**
 * Pairs of client and site whose TLS handshake with gatehouse failed after they saw its
 * certificate: a pinned app, or a device without the office CA. Their tunnels pass through
 * undecrypted for a while, so the app keeps working (blocklists still apply to the name).
 */
export class PassThrough {
  private readonly pairs: LRUCache<string, number>;

  constructor(ttlMs: number) {
    this.pairs = new LRUCache<string, number>({ max: 10_000, ttl: Math.max(1, ttlMs) });
  }

  /** Returns true if the pair is new (the caller logs it once). */
  add(client: string, host: string): boolean {
    const key = `${client} ${host}`;
    const fresh = !this.pairs.has(key);
    this.pairs.set(key, Date.now());
    return fresh;
  }

  has(client: string, host: string): boolean {
    return this.pairs.has(`${client} ${host}`);
  }

  /** For the dashboard: the pairs passing through now. */
  list(): { client: string; host: string; since: number }[] {
    return [...this.pairs.entries()].map(([key, since]) => {
      const [client = "", host = ""] = key.split(" ");
      return { client, host, since };
    });
  }
}

export interface InterceptSettings {
  /** proxy.intercept: domains (with subdomains), "*.x" (subdomains only), or "*". */
  domains: readonly string[];
  /** proxy.interceptClients: addresses, CIDRs or firewall group names; empty = everyone. */
  clients: readonly string[];
  /** proxy.interceptPorts: HTTPS ports; tunnels to others carry other protocols. */
  ports: readonly number[];
}

/**
 * Which tunnels are decrypted. In order: only proxy.interceptPorts; rules/no-intercept.txt wins over
 * everything; a client that refused the CA for the site passes through; only the clients in
 * proxy.interceptClients; then proxy.intercept and rules/intercept.txt.
 */
export class InterceptPolicy {
  private readonly all: boolean;
  private readonly exact = new Set<string>();
  private readonly below: string[] = [];
  private readonly addresses: AddressSet | undefined;
  private readonly groups: string[];

  constructor(
    private readonly settings: InterceptSettings,
    private readonly rules: () => RuleSet,
    private readonly passThrough: PassThrough,
  ) {
    this.all = settings.domains.includes("*");
    for (const d of settings.domains) {
      if (d === "*") continue;
      if (d.startsWith("*.")) this.below.push(d.slice(2));
      else {
        this.exact.add(d);
        this.below.push(d);
      }
    }
    const literal = settings.clients.filter(isAddressOrCidr);
    this.addresses = literal.length > 0 ? new AddressSet(literal) : undefined;
    this.groups = settings.clients.filter((c) => !isAddressOrCidr(c)).map((c) => c.toLowerCase());
  }

  get ports(): readonly number[] {
    return this.settings.ports;
  }

  /** True when some tunnel could be intercepted at all (a configured list or rules/intercept.txt). */
  get configured(): boolean {
    return this.all || this.exact.size > 0 || this.below.length > 0;
  }

  decide(client: string, host: string, port: number): InterceptDecision {
    if (!this.settings.ports.includes(port)) return { intercept: false, reason: `port ${port} is not in proxy.interceptPorts` };
    const name = isIP(host) ? host : (normalizeDomain(host) ?? host);
    const rules = this.rules();
    const never = rules.interceptRule(name, "no-intercept");
    if (never) return { intercept: false, reason: "listed in rules/no-intercept.txt", rule: never };
    if (this.passThrough.has(client, name))
      return { intercept: false, reason: "the client refused the office CA for this site; passing through for now" };
    if (!this.clientIncluded(client, rules)) return { intercept: false, reason: "client not in proxy.interceptClients" };
    if (this.all) return { intercept: true, reason: 'proxy.intercept is "*"' };
    if (this.exact.has(name) || this.below.some((d) => name.endsWith(`.${d}`)))
      return { intercept: true, reason: "listed in proxy.intercept" };
    const listed = rules.interceptRule(name, "intercept");
    if (listed) return { intercept: true, reason: "listed in rules/intercept.txt", rule: listed };
    return { intercept: false, reason: "not listed for interception" };
  }

  private clientIncluded(client: string, rules: RuleSet): boolean {
    if (this.settings.clients.length === 0) return true;
    if (this.addresses?.has(client)) return true;
    return this.groups.some((g) => rules.firewall.groups.get(g)?.has(client) === true);
  }
}
