import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";
import type { Config } from "../config/schema.js";
import type { HttpExchange, HttpResponse } from "../http/exchange.js";
import type { LocalRoute } from "../http/stages/self.js";
import { AddressSet, isLoopback, normalizeAddress, OFFICE_RANGES } from "../net/address.js";

// Proxy auto-configuration: browsers set to "automatic" fetch a PAC script (by the URL an admin
// gives them, by DHCP option 252, or from http://wpad.<their domain>/wpad.dat) and ask it, for
// every URL, whether to go through the proxy. Office names and private ranges go direct: the
// proxy would only add a hop to the office's own servers.

const PAC_TYPE = "application/x-ns-proxy-autoconfig";

interface Direct {
  names: string[];
  /** IPv4 networks as [address, mask] for isInNet. */
  nets: [string, string][];
  /** IPv6 networks as [eight 16-bit groups, prefix length]: PAC's isInNet has no IPv6. */
  nets6: [number[], number][];
}

function directOf(entries: readonly string[]): Direct {
  const names: string[] = [];
  const nets: [string, string][] = [];
  const nets6: [number[], number][] = [];
  for (const entry of [...OFFICE_RANGES, ...entries]) {
    if (entry.includes("/") || isIP(entry) !== 0) {
      const [net, bits] = entry.includes("/") ? ipaddr.parseCIDR(entry) : [ipaddr.parse(entry), isIP(entry) === 4 ? 32 : 128];
      if (net.kind() === "ipv6") {
        nets6.push([(net as ipaddr.IPv6).parts, bits]);
        continue;
      }
      const mask = ipaddr.IPv4.subnetMaskFromPrefixLength(bits).toString();
      nets.push([net.toString(), mask]);
    } else
      names.push(
        entry
          .replace(/^\*?\./, "")
          .replace(/\.$/, "")
          .toLowerCase(),
      );
  }
  const unique = <T>(xs: T[]) => [...new Map(xs.map((x) => [JSON.stringify(x), x])).values()];
  return { names: unique(names), nets: unique(nets), nets6: unique(nets6) };
}

/** The PAC script for a proxy reachable at `proxy` ("192.168.1.1:3128"). */
export function pacScript(direct: readonly string[], proxy: string): string {
  const d = directOf(direct);
  // Names and networks are validated by the config schema; JSON.stringify quotes them for JS.
  return `// Proxy auto-configuration from gatehouse: office names and private ranges go direct.
function FindProxyForURL(url, host) {
  var names = ${JSON.stringify(d.names)};
  var nets = ${JSON.stringify(d.nets)};
  var nets6 = ${JSON.stringify(d.nets6)};
  host = host.toLowerCase();
  // An IPv6 literal first: it has no dots, and some browsers' isPlainHostName would call it plain.
  if (host.indexOf(":") >= 0) {
    var groups = ipv6Groups(host.replace(/^\\[|\\]$/g, ""));
    for (var k = 0; groups && k < nets6.length; k++) {
      if (inNet6(groups, nets6[k][0], nets6[k][1])) return "DIRECT";
    }
    return ${JSON.stringify(`PROXY ${proxy}`)};
  }
  if (isPlainHostName(host) || host === "localhost") return "DIRECT";
  for (var i = 0; i < names.length; i++) {
    if (host === names[i] || dnsDomainIs(host, "." + names[i])) return "DIRECT";
  }
  // Only literal addresses are checked against the networks: resolving every name here would
  // cost each page a DNS lookup in the browser.
  if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host)) {
    for (var j = 0; j < nets.length; j++) {
      if (isInNet(host, nets[j][0], nets[j][1])) return "DIRECT";
    }
  }
  return ${JSON.stringify(`PROXY ${proxy}`)};
}

// An IPv6 literal as eight numbers, or null (an embedded IPv4 form goes through the proxy).
function ipv6Groups(h) {
  var halves = h.split("::");
  if (halves.length > 2) return null;
  var a = halves[0] ? halves[0].split(":") : [];
  var b = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  var zeros = 8 - a.length - b.length;
  if (halves.length === 1 ? zeros !== 0 : zeros < 1) return null;
  var g = a.slice();
  for (var i = 0; i < zeros; i++) g.push("0");
  g = g.concat(b);
  var out = [];
  for (var j = 0; j < 8; j++) {
    if (!/^[0-9a-f]{1,4}$/.test(g[j])) return null;
    out.push(parseInt(g[j], 16));
  }
  return out;
}

function inNet6(groups, net, bits) {
  for (var i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    var mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if ((groups[i] & mask) !== (net[i] & mask)) return false;
  }
  return true;
}
`;
}

/** /proxy.pac and /wpad.dat at the proxy's own address, for office clients only. */
export function pacRoutes(cfg: Config["proxy"]): LocalRoute[] {
  const clients = new AddressSet(cfg.clients);
  const handle = (x: HttpExchange): HttpResponse => {
    if (!clients.has(x.client.address)) {
      const body = Buffer.from("The proxy configuration is for office clients only.\n");
      return {
        kind: "response",
        status: 403,
        headers: [
          ["content-type", "text/plain; charset=utf-8"],
          ["content-length", String(body.length)],
        ],
        body,
      };
    }
    const local = normalizeAddress(x.ctx.local.address);
    const host = local.includes(":") ? `[${local}]` : local;
    const body = Buffer.from(pacScript(cfg.pac.direct, `${host}:${x.ctx.local.port}`));
    return {
      kind: "response",
      status: 200,
      headers: [
        ["content-type", PAC_TYPE],
        ["content-length", String(body.length)],
        // Browsers re-read it on their own schedule; five minutes lets a change reach them soon.
        ["cache-control", "max-age=300"],
      ],
      body,
    };
  };
  return [
    { path: "/proxy.pac", handle },
    { path: "/wpad.dat", handle },
  ];
}

/** The names the DNS answers for WPAD: wpad.NAME for each office name in proxy.pac.direct. */
export function wpadNames(cfg: Config["proxy"]["pac"]): ReadonlySet<string> {
  if (!cfg.wpad) return new Set();
  return new Set(directOf(cfg.direct).names.map((n) => `wpad.${n}`));
}

/**
 * This machine's address that a client reaches it by: the interface whose network holds the
 * client, or loopback for a loopback client, or the first outside address of the family.
 */
export function addressFacing(client: string, family: 4 | 6): string | undefined {
  const c = normalizeAddress(client);
  if (isLoopback(c)) return family === 4 ? "127.0.0.1" : "::1";
  const kind = family === 4 ? "IPv4" : "IPv6";
  const candidates = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((i) => i.family === kind && !i.internal);
  if (isIP(c) === family) {
    const parsed = ipaddr.parse(c);
    const facing = candidates.find((i) => {
      if (!i.cidr) return false;
      const [net, bits] = ipaddr.parseCIDR(i.cidr);
      return net.kind() === parsed.kind() && parsed.match(net, bits);
    });
    if (facing) return facing.address;
  }
  return candidates[0]?.address;
}
