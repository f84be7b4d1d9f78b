import type { LookupAddress } from "node:dns";
import { isIP } from "node:net";
import { isLoopback } from "./address.js";

/** Node's dns.lookup shape, which net.connect and undici accept as their `lookup` option. */
export type LookupFunction = (
  hostname: string,
  options: { family?: number | string; all?: boolean },
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

export class LoopbackRefusedError extends Error {
  readonly code = "GH_DEST_LOOPBACK";
  constructor(readonly hostname: string) {
    super(`${hostname} resolves to a loopback address of this appliance`);
  }
}

/**
 * A lookup that refuses names resolving to loopback, for connections made on behalf of clients that
 * are not on loopback themselves: otherwise any office client could reach services bound to 127.0.0.1.
 */
export function refuseLoopback(inner: LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    inner(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
      if (list.some(isLoopback)) return callback(new LoopbackRefusedError(hostname) as NodeJS.ErrnoException, address, family);
      callback(null, address, family);
    });
  };
}

/** True if the host names this machine's loopback without any lookup (literal or "localhost"). */
export function isLoopbackHost(host: string): boolean {
  if (isIP(host)) return isLoopback(host);
  const h = host.toLowerCase().replace(/\.$/, "");
  return h === "localhost" || h.endsWith(".localhost");
}
