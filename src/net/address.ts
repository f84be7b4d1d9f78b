import { BlockList, isIP } from "node:net";
import ipaddr from "ipaddr.js";

/** Who may use the proxy and the resolver unless the config says otherwise: loopback and private ranges. */
export const OFFICE_RANGES: readonly string[] = [
  "127.0.0.0/8",
  "::1/128",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "fc00::/7",
  "fe80::/10",
];

export interface ListenAddress {
  host: string | undefined;
  port: number;
  /** As the admin wrote it, for messages. */
  text: string;
}

/** ":3128", "3128", "127.0.0.1:8080", "[::1]:53". An empty host means every interface. */
export function parseListen(text: string): ListenAddress | string {
  const m = /^(?:\[([0-9a-fA-F:.%\w]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(text.trim());
  if (!m) return 'expected "host:port", ":port" or "[v6]:port"';
  const host = m[1] ?? (m[2] || undefined);
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  if (host !== undefined && host !== "localhost" && isIP(host) === 0) return `"${host}" is not an IP address`;
  return { host, port, text };
}

/** "10.0.0.5", "10.0.0.5:53", "[2001:db8::1]:53", "2001:db8::1": an IP and a port. */
export function parseHostPort(text: string, defaultPort: number): { address: string; port: number } | undefined {
  const t = text.trim();
  let address = t;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  if (bracket) {
    address = bracket[1] as string;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (isIP(t) === 0) {
    const m = /^([^:]+):(\d{1,5})$/.exec(t);
    if (!m) return undefined;
    address = m[1] as string;
    port = Number(m[2]);
  }
  if (isIP(address) === 0 || port < 1 || port > 65535) return undefined;
  return { address, port };
}

/** "mail.office.lan:25", "10.0.0.5:21", "[2001:db8::5]:143": a host (name or IP) and a port. */
export function parseHostAndPort(text: string): { host: string; port: number } | undefined {
  const t = text.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([a-zA-Z0-9_.-]+)):(\d{1,5})$/.exec(t);
  if (!m) return undefined;
  const host = (m[1] ?? m[2] ?? "").toLowerCase();
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || (m[1] && isIP(host) !== 6)) return undefined;
  return { host, port };
}

/** "::ffff:10.1.2.3" (an IPv4 client on a dual-stack socket) becomes "10.1.2.3". */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

export function isLoopback(address: string): boolean {
  if (address.startsWith("127.") || address === "::1" || address.startsWith("::ffff:127.")) return true;
  const a = normalizeAddress(address);
  if (isIP(a) === 0) return false;
  return ipaddr.parse(a).range() === "loopback";
}

/** True if the text is an address or a CIDR that ipaddr.js accepts. */
export function isAddressOrCidr(text: string): boolean {
  if (text.includes("/")) {
    try {
      ipaddr.parseCIDR(text);
      return true;
    } catch {
      return false;
    }
  }
  return ipaddr.isValid(text);
}

/** A set of addresses and CIDRs compiled once into node's BlockList (native, O(ranges) but tiny here). */
export class AddressSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      if (entry.includes("/")) {
        const [net, bits] = ipaddr.parseCIDR(entry);
        this.list.addSubnet(net.toString(), bits, net.kind() === "ipv6" ? "ipv6" : "ipv4");
      } else {
        const addr = ipaddr.parse(entry);
        this.list.addAddress(addr.toString(), addr.kind() === "ipv6" ? "ipv6" : "ipv4");
      }
    }
    this.size = entries.length;
  }

  // Clients repeat: remembering answers saves BlockList's per-call SocketAddress allocation.
  private readonly memo = new Map<string, boolean>();

  has(address: string): boolean {
    const known = this.memo.get(address);
    if (known !== undefined) return known;
    const a = normalizeAddress(address);
    const family = isIP(a);
    const result = family !== 0 && this.list.check(a, family === 6 ? "ipv6" : "ipv4");
    if (this.memo.size >= 65_536) this.memo.clear();
    this.memo.set(address, result);
    return result;
  }
}
