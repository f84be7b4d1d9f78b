import { isIP } from "node:net";
import type { LookupFunction } from "../net/lookup.js";
import type { RuleRef } from "../pipeline/stage.js";
import type { BlockInfo } from "./exchange.js";
import type { DnsResolver, Resolution } from "./resolver.js";
import { RCODE, TYPE } from "./wire.js";

/** The proxy asked for a name that the DNS rules block, itself or through its CNAME chain. */
export class DnsBlockedError extends Error {
  readonly code = "GH_DNS_BLOCKED";
  /** The name that was blocked: the host itself, or a CNAME target behind it. */
  readonly blockedName: string;
  /** The stage that blocked it: "blocklist", "firewall" or "cname". */
  readonly stage: string;
  readonly rule: RuleRef | undefined;

  constructor(
    readonly hostname: string,
    blocked: BlockInfo,
  ) {
    super(
      blocked.name === hostname
        ? `${hostname} is blocked by the office DNS rules`
        : `${hostname} is blocked by the office DNS rules: it points (CNAME) to ${blocked.name}`,
    );
    this.blockedName = blocked.name;
    this.stage = blocked.stage;
    this.rule = blocked.rule;
  }
}

/**
 * The proxy's name lookups through the same DNS pipeline as the office's clients, as values (no
 * wire round trip), so local records, blocking (CNAME chains included) and the cache apply to
 * proxied requests too. `client`, when given, is whom the connection is for (firewall "from" rules).
 * Like dns.lookup, the callback is called asynchronously and outside any promise chain.
 */
export function resolverLookup(resolver: () => DnsResolver, client?: { address: string }): LookupFunction {
  return (hostname, options, callback) => {
    const family = Number(options.family ?? 0);
    if (isIP(hostname)) {
      const f = isIP(hostname) as 4 | 6;
      process.nextTick(() => (options.all ? callback(null, [{ address: hostname, family: f }]) : callback(null, hostname, f)));
      return;
    }
    const wanted: (4 | 6)[] = family === 4 ? [4] : family === 6 ? [6] : [4, 6];
    const r = resolver();
    Promise.all(wanted.map((f) => r.resolve(hostname, f === 4 ? TYPE.A : TYPE.AAAA, client))).then(
      (results) => process.nextTick(deliver, hostname, options.all === true, results, callback),
      (err: Error) => process.nextTick(() => callback(Object.assign(err, { code: "EAI_AGAIN" }), "")),
    );
  };
}

function deliver(hostname: string, all: boolean, results: Resolution[], callback: Parameters<LookupFunction>[2]): void {
  const blocked = results.find((r) => r.blocked)?.blocked;
  if (blocked) return callback(new DnsBlockedError(hostname, blocked) as NodeJS.ErrnoException, "");
  // 0.0.0.0 and :: from an upstream that blocks (a Pi-hole upstream) would connect to this machine.
  const list = results.flatMap((r) =>
    r.addresses
      .filter((a) => a.address !== "0.0.0.0" && a.address !== "::")
      .map((a) => ({ address: a.address, family: a.family })),
  );
  if (list.length === 0) {
    const nx = results.every((r) => r.rcode === RCODE.NXDOMAIN);
    const code = nx ? "ENOTFOUND" : results.some((r) => r.rcode === RCODE.SERVFAIL) ? "EAI_AGAIN" : "ENODATA";
    return callback(Object.assign(new Error(`${code} ${hostname}`), { code, hostname }), "");
  }
  const first = list[0] as { address: string; family: number };
  if (all) callback(null, list);
  else callback(null, first.address, first.family);
}
