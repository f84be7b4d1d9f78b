import { isIP } from "node:net";
import { z } from "zod";
import { isPasswordHash } from "../admin/auth/password.js";
import { isAddressOrCidr, OFFICE_RANGES, parseHostPort, parseListen } from "../net/address.js";
import { fronts } from "./fronts-schema.js";
import { cidr, duration, listenList, port, size } from "./zod-types.js";

// One schema for the whole of gatehouse.yaml. Every key has a default and a one-line doc (.describe),
// strict objects make unknown keys errors, and the value types of zod-types.ts turn "256MiB" and
// "30s" into numbers so the rest of the program never parses units again.

const queryLog = z
  .strictObject({
    file: z.string().default("-").describe('where DNS query lines go (JSON): a file path, "-" for stdout, "" for nowhere'),
  })
  .prefault({});

const accessLog = z
  .strictObject({
    file: z.string().default("-").describe('where access lines go: a file path, or "-" for stdout, "" for nowhere'),
    format: z.enum(["squid", "json"]).default("squid").describe("squid (native access.log) or json (one object a line)"),
  })
  .prefault({});

const cache = z
  .strictObject({
    memory: size("256MiB").describe("bytes of responses kept in memory"),
    disk: size("0").describe("bytes of responses kept on disk across restarts; 0 = no disk tier"),
    dir: z.string().default("./var/cache").describe("directory of the disk tier"),
    maxObject: size("64MiB").describe("responses larger than this are streamed through, never stored"),
  })
  .prefault({});

const limits = z
  .strictObject({
    maxUrlLength: size("8KiB").describe("longest request target accepted; longer gets 414"),
    maxHeaderSize: size("64KiB").describe("request line plus headers; larger gets 431"),
    headerTimeout: duration("10s").describe("a client must send its whole header section within this (slowloris)"),
    idleTimeout: duration("60s").describe("an idle keep-alive client connection is closed after this"),
    maxClientConnections: z.number().int().min(1).default(4096).describe("client connections open at once"),
    tunnelIdleTimeout: duration("10m").describe("a CONNECT tunnel with no bytes either way is closed after this"),
    sendTimeout: duration("60s").describe("a client that takes no byte of its response for this long is cut off"),
  })
  .prefault({});

const upstream = z
  .strictObject({
    connectTimeout: duration("10s").describe("time to open a connection to an origin before 504"),
    headersTimeout: duration("60s").describe("time for an origin to send its response headers before 504"),
    bodyTimeout: duration("60s").describe("longest pause inside a response body before the client is cut off"),
    maxConnectionsPerOrigin: z.number().int().min(1).default(256).describe("pooled connections to one origin"),
    keepAliveTimeout: duration("4s").describe("an idle pooled origin connection is closed after this"),
  })
  .prefault({});

const interceptTarget = z
  .string()
  .transform((v) => (v.trim().toLowerCase() === "all" ? "*" : v.trim().toLowerCase().replace(/\.$/, "")))
  .refine((v) => v === "*" || /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(v), {
    message: 'expected a domain like shop.example (subdomains included), or "*" for every site',
  });

const pacEntry = z.string().refine((v) => isAddressOrCidr(v) || /^\*?\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(v), {
  message: "expected a domain name like office.lan, an address, or a CIDR like 10.0.0.0/8",
});

const pac = z
  .strictObject({
    direct: z
      .array(pacEntry)
      .default([])
      .describe(
        "names (with their subdomains), addresses and CIDRs that /proxy.pac and /wpad.dat send direct, besides plain host names and the private ranges",
      ),
    wpad: z
      .boolean()
      .default(true)
      .describe(
        "answer wpad.NAME for each name in direct with gatehouse's address (DNS, office clients, unless a local record says otherwise)",
      ),
  })
  .prefault({});

const proxy = z
  .strictObject({
    listen: listenList([":3128"]).describe("addresses of the forward proxy; [] turns it off"),
    clients: z
      .array(cidr)
      .default([...OFFICE_RANGES])
      .describe("addresses and CIDRs that may use the proxy"),
    connectPorts: z.array(port).default([443]).describe("ports that CONNECT tunnels may reach"),
    forwardedFor: z.boolean().default(false).describe("add X-Forwarded-For with the client address"),
    pac,
    name: z.string().min(1).default("gatehouse").describe("name shown in Via and on the proxy's own pages"),
    contact: z.string().default("your IT administrator").describe("whom the block and error pages tell users to ask"),
    limits,
    upstream,
    cache,
    intercept: z
      .array(interceptTarget)
      .default([])
      .describe(
        'domains whose HTTPS tunnels are decrypted, filtered by path and cached (a name covers its subdomains); ["*"] = all; rules/intercept.txt adds more, rules/no-intercept.txt always wins',
      ),
    interceptPorts: z.array(port).default([443]).describe("CONNECT ports whose tunnels may be intercepted (HTTPS)"),
    interceptClients: z
      .array(z.string().min(1))
      .default([])
      .describe("addresses, CIDRs or firewall group names whose tunnels may be intercepted; [] = every office client"),
    passThrough: duration("1h").describe(
      "after a client refuses the office CA for a site (a pinned app, a device without the CA), its tunnels there pass through undecrypted for this long",
    ),
  })
  .prefault({});

const ipPort = z.string().refine((v) => parseHostPort(v, 53) !== undefined, {
  message: "expected an IP address with an optional port, like 10.0.0.5 or 10.0.0.5:53 or [2001:db8::1]:53",
});

const dnsCache = z
  .strictObject({
    size: size("64MiB").describe(
      "bytes of answers kept (their wire bytes plus bookkeeping); the least recently used go first; 0 = no cache",
    ),
    entries: z
      .number()
      .int()
      .min(0)
      .default(100_000)
      .describe("answers kept at most, whatever their size (a second bound beside size); 0 = no cache"),
    maxAnswer: size("16KiB").describe("a larger answer is served but not kept, so a few huge answers cannot push out many"),
    minTtl: duration("0s").describe("answers are kept at least this long"),
    maxTtl: duration("1d").describe("answers are kept at most this long"),
    negativeMaxTtl: duration("1h").describe("NXDOMAIN/NODATA answers are kept at most this long (RFC 2308)"),
    prefetch: z.boolean().default(true).describe("refresh popular answers shortly before they expire"),
    serveStale: duration("1d").describe(
      "when every upstream fails, answer from expired entries up to this old (RFC 8767); 0 = never",
    ),
  })
  .prefault({});

const dnsChaos = z
  .strictObject({
    version: z.string().max(255).default("").describe('TXT answer to version.bind/version.server (class CHAOS); "" = REFUSED'),
    id: z.string().max(255).default("").describe('TXT answer to id.server/hostname.bind (class CHAOS); "" = REFUSED'),
  })
  .prefault({});

const dns = z
  .strictObject({
    listen: listenList([":53"]).describe("addresses of the DNS server, UDP and TCP; [] turns it off"),
    upstreams: z.array(ipPort).default([]).describe("content servers; empty = nameservers in /etc/resolv.conf"),
    forward: z.record(z.string(), z.array(ipPort)).default({}).describe("conditional forwarding by domain"),
    clients: z
      .array(cidr)
      .default([...OFFICE_RANGES])
      .describe("addresses and CIDRs that may ask; others get REFUSED"),
    blockMode: z
      .enum(["zero", "nxdomain", "refused", "address"])
      .default("zero")
      .describe("answer for blocked names: 0.0.0.0/::, NXDOMAIN, REFUSED, or blockAddress"),
    blockAddress: z
      .array(z.string().refine((v) => isIP(v) !== 0, { message: "expected an IP address" }))
      .default([])
      .describe("with blockMode address: where blocked names point (the block page)"),
    blockTtl: duration("60s").describe("TTL of answers for blocked names"),
    rateLimit: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe("UDP queries a second from one address (a whole office behind a router fits); 0 = no limit"),
    rateLimitSlip: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(2)
      .describe("over the limit, 1 in this many UDP queries gets an empty TC answer (retry over TCP); 0 = drop all"),
    timeout: duration("2s").describe("time to wait for one upstream before trying the next"),
    tcpIdleTimeout: duration("10s").describe(
      "an idle TCP client connection is closed after this; also the longest one query may take to arrive",
    ),
    chaos: dnsChaos,
    cache: dnsCache,
  })
  .prefault({});

const admin = z
  .strictObject({
    listen: z
      .string()
      .default("127.0.0.1:8080")
      .refine((v) => v === "" || typeof parseListen(v) !== "string", {
        message: 'expected "host:port" like 127.0.0.1:8080, or "" for off',
      })
      .describe('address of the admin page and API; "" turns it off'),
    password: z
      .string()
      .default("")
      .refine((v) => v === "" || isPasswordHash(v), {
        message:
          "must be a hash made by `gatehouse passwd`, never the password itself: run `npx gatehouse passwd`, type the password, and put the line it prints here",
      })
      .describe('a hash from `gatehouse passwd`; "": the admin answers loopback clients only, with no login'),
    clients: z
      .array(cidr)
      .default([...OFFICE_RANGES])
      .describe("addresses and CIDRs that may reach the admin when a password is set (with none, loopback only)"),
    session: duration("8h").describe("a login lasts this long after its last use"),
    loginAttempts: z
      .number()
      .int()
      .min(1)
      .default(5)
      .describe("failed logins one client address may make in 15 minutes; more get 429 until the window passes"),
    state: z
      .string()
      .default("./var/admin")
      .describe('where the dashboard keeps its last 24 hours (history.json) and the CLI its access token; "" = memory only'),
    recentLog: size("4MiB").describe("memory for the recent access and query lines that the logs page searches"),
    tls: z
      .boolean()
      .default(false)
      .describe(
        "serve the admin over HTTPS, with the certificate from certs/ for the name the browser asks for (else one from the office CA)",
      ),
  })
  .prefault({});

const remoteList = z.strictObject({
  url: z
    .string()
    .regex(/^https?:\/\/\S+$/, { message: "expected an http:// or https:// URL" })
    .describe("where the list is downloaded from"),
  type: z.enum(["block", "allow"]).default("block").describe("block or allow list"),
  refresh: duration("24h").describe("how often it is downloaded again"),
});

export const configSchema = z
  .strictObject({
    rules: z.string().default("./rules").describe("admin-edited rule files, watched for changes"),
    lists: z
      .array(remoteList)
      .default([])
      .describe("remote block/allow lists, downloaded on a schedule and used like files in rules/"),
    listsDir: z.string().default("./var/lists").describe("where downloaded lists are kept (last good copy of each)"),
    certs: z
      .string()
      .default("./certs")
      .describe("the office CA (ca.crt, ca.key), certificate pairs for the fronts (NAME.crt, NAME.key), upstream-ca/*.pem"),
    tls: z
      .strictObject({
        caName: z.string().min(1).default("gatehouse office CA").describe("the name `gatehouse ca init` gives a new office CA"),
        handshakeTimeout: duration("10s").describe("a client must finish its TLS handshake with gatehouse within this"),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["debug", "info", "warn", "error"]).default("info").describe("level of the program log (stderr)"),
        access: accessLog.describe("one line per proxied request"),
        queries: queryLog.describe("one line per DNS query"),
      })
      .prefault({}),
    shutdownGrace: duration("10s").describe("on SIGTERM, open requests get this long to finish"),
    workers: z
      .union([z.literal("auto"), z.number().int().min(1).max(64)])
      .default("auto")
      .describe(
        "processes serving the proxy, DNS and fronts: auto = one per core; 1 = one process doing everything (no supervisor)",
      ),
    shared: z
      .strictObject({
        redis: z
          .string()
          .regex(/^rediss?:\/\/\S+$/, { message: "expected a URL like redis://127.0.0.1:6379" })
          .optional()
          .describe(
            "several gatehouses share their DNS cache, small HTTP cache entries and dashboard counters through this Redis/Valkey; each serves on its own when it is down",
          ),
      })
      .prefault({})
      .describe("state shared between several gatehouse boxes"),
    proxy,
    dns,
    admin,
    fronts: fronts.describe("the office's own servers published through gatehouse (web, FTP, mail)"),
  })
  .superRefine((c, ctx) => {
    for (const clash of listenerClashes(c)) ctx.addIssue({ code: "custom", path: clash.path, message: clash.message });
  });

/** One address a part of gatehouse listens on, as the config gives it. */
interface Listener {
  path: (string | number)[];
  text: string;
  host: string | undefined;
  port: number;
  /** proxy, dns, admin, or fronts[i]: the listeners of one owner are not compared here. */
  owner: string;
}

/**
 * Two parts of gatehouse given the same address and port (the proxy and a front, say) fail at start
 * with EADDRINUSE: said here, with the line. ":3128" (every address) takes 127.0.0.1:3128 too; the
 * DNS server listens on TCP as well as UDP, so a TCP listener on its port clashes. Fronts that list
 * the very same address are checked in fronts-schema.ts (web fronts of one protocol share it).
 */
export function listenerClashes(c: {
  proxy: { listen: string[] };
  dns: { listen: string[] };
  admin: { listen: string };
  fronts: { listen: string[] }[];
}): { path: (string | number)[]; message: string }[] {
  const all: Listener[] = [];
  const add = (path: (string | number)[], text: string, owner: string) => {
    const a = parseListen(text);
    if (typeof a !== "string" && a.port !== 0) all.push({ path, text, host: a.host, port: a.port, owner });
  };
  for (const [j, t] of c.proxy.listen.entries()) add(["proxy", "listen", j], t, "proxy");
  for (const [j, t] of c.dns.listen.entries()) add(["dns", "listen", j], t, "dns");
  if (c.admin.listen !== "") add(["admin", "listen"], c.admin.listen, "admin");
  for (const [i, f] of c.fronts.entries()) {
    for (const [j, t] of f.listen.entries()) add(["fronts", i, "listen", j], t, `fronts[${i}]`);
  }
  const clashes: { path: (string | number)[]; message: string }[] = [];
  const named = (l: Listener) => `${l.path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("")}`;
  all.forEach((b, bi) => {
    const a = all.slice(0, bi).find((a) => {
      if (a.owner === b.owner || a.port !== b.port || !sameAddresses(a.host, b.host)) return false;
      const bothFronts = a.owner.startsWith("fronts") && b.owner.startsWith("fronts");
      // Fronts with the very same address: fronts-schema.ts says whether they may share it.
      if (bothFronts && listenKey(a) === listenKey(b)) return false;
      return true;
    });
    if (!a) return;
    const dns = a.owner === "dns" || b.owner === "dns" ? " (DNS listens on TCP as well as UDP)" : "";
    clashes.push({
      path: b.path,
      message: `${b.text}${wide(b, " (", ")")} and ${named(a)} (${a.text}${wide(a, ", ", "")}) would listen on the same address and port${dns}; give one of them another port`,
    });
  });
  return clashes;
}

/** ":3128" and "0.0.0.0:3128" take more than one address: said, so a clash with 127.0.0.1:3128 is understood. */
function wide(l: Listener, before: string, after: string): string {
  const what = l.host === undefined || l.host === "::" ? "every address" : l.host === "0.0.0.0" ? "every IPv4 address" : "";
  return what ? `${before}${what}${after}` : "";
}

const listenKey = (l: Listener) => `${l.host ?? "*"}:${l.port}`;

/** Whether two listen hosts take some address in common (undefined and :: are every address). */
function sameAddresses(a: string | undefined, b: string | undefined): boolean {
  const kind = (h: string | undefined): { any: "all" | "v4" | undefined; ips: string[] } => {
    if (h === undefined || h === "::" || h === "[::]") return { any: "all", ips: [] };
    if (h === "0.0.0.0") return { any: "v4", ips: [] };
    if (h === "localhost") return { any: undefined, ips: ["127.0.0.1", "::1"] };
    return { any: undefined, ips: [h.toLowerCase()] };
  };
  const x = kind(a);
  const y = kind(b);
  if (x.any === "all" || y.any === "all") return true;
  if (x.any === "v4" || y.any === "v4") {
    const other = x.any === "v4" ? y : x;
    return other.any === "v4" || other.ips.some((ip) => isIP(ip) === 4);
  }
  return x.ips.some((ip) => y.ips.includes(ip));
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
