import { isIP } from "node:net";
import type { LookupFunction } from "../net/lookup.js";
import type { DnsResolver } from "./resolver.js";
import { RCODE } from "./wire.js";

export class DnsBlockedError extends Error {
  readonly code = "GH_DNS_BLOCKED";
  constructor(readonly hostname: string) {
    super(`${hostname} is blocked by the office DNS rules`);
  }
}

/**
 * The proxy's name lookups through the same DNS pipeline as the office's clients, so local records,
 * blocking (CNAME chains included) and the cache apply to proxied requests too.
 */
export function resolverLookup(resolver: () => DnsResolver): LookupFunction {
  return (hostname, options, callback) => {
    const family = Number(options.family ?? 0);
    if (isIP(hostname)) {
      const f = isIP(hostname) as 4 | 6;
      if (options.all) callback(null, [{ address: hostname, family: f }]);
      else callback(null, hostname, f);
      return;
    }
    const name = hostname.toLowerCase().replace(/\.$/, "");
    const wanted: (4 | 6)[] = family === 4 ? [4] : family === 6 ? [6] : [4, 6];
    Promise.all(wanted.map((f) => resolver().addresses(name, f))).then(
      (results) => {
        if (results.some((r) => r.blocked)) return callback(new DnsBlockedError(hostname) as NodeJS.ErrnoException, "");
        const list = results.flatMap((r, i) => r.addresses.map((address) => ({ address, family: wanted[i] as 4 | 6 })));
        if (list.length === 0) {
          const nx = results.every((r) => r.rcode === RCODE.NXDOMAIN);
          const err = Object.assign(new Error(`${nx ? "ENOTFOUND" : "ENODATA"} ${hostname}`), {
            code: nx ? "ENOTFOUND" : results.some((r) => r.rcode === RCODE.SERVFAIL) ? "EAI_AGAIN" : "ENODATA",
            hostname,
          });
          return callback(err, "");
        }
        if (options.all) callback(null, list);
        else callback(null, (list[0] as { address: string }).address, (list[0] as { family: number }).family);
      },
      (err: Error) => callback(Object.assign(err, { code: "EAI_AGAIN" }) as NodeJS.ErrnoException, ""),
    );
  };
}
