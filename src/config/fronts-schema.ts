import { isIP } from "node:net";
import { z } from "zod";
import { isAddressOrCidr, parseHostAndPort, parseListen } from "../net/address.js";
import { duration, listenAddress } from "./zod-types.js";

// The `fronts` key: the office's own servers published through gatehouse. One entry a front; the
// protocol decides which keys apply, checked here so a front that could not work is a config error
// with its line, not a surprise at the first connection.

export const WEB_PROTOCOLS = ["http", "https"] as const;
export const TCP_PROTOCOLS = ["ftp", "ftps", "smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"] as const;
export type FrontProtocol = (typeof WEB_PROTOCOLS)[number] | (typeof TCP_PROTOCOLS)[number];

const MAIL = new Set(["smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"]);
const SMTP = new Set(["smtp", "submission", "smtps"]);

const hostPattern = z
  .string()
  .transform((v) => v.trim().toLowerCase().replace(/\.$/, ""))
  .refine((v) => /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(v), {
    message: "expected a host name like intranet.office.example, or *.office.example for its subdomains",
  });

const backendUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === "http:" || u.protocol === "https:") && u.pathname === "/" && !u.search && !u.username;
    } catch {
      return false;
    }
  },
  { message: 'expected a backend URL like "http://10.0.0.20:8080" (scheme, host and port; no path)' },
);

const clientAddress = z.enum(["none", "proxy-v1", "proxy-v2", "xclient"]);

const webBackend = z.union([
  backendUrl,
  z.strictObject({
    url: backendUrl,
    clientAddress: z
      .enum(["none", "proxy-v1", "proxy-v2"])
      .optional()
      .describe("PROXY protocol header to this backend (overrides the front's clientAddress)"),
  }),
]);

const health = z
  .strictObject({
    enabled: z.boolean().default(true).describe("active checks of every backend"),
    interval: duration("10s").describe("time between two checks of a backend"),
    timeout: duration("3s").describe("a check that takes longer fails"),
    path: z
      .string()
      .refine((v) => v.startsWith("/"), { message: 'expected a path that starts with "/", like /healthz' })
      .default("/")
      .describe("http(s): the path checked with GET"),
    expect: z
      .string()
      .refine(isStatusRange, {
        message: 'expected a status or a range of statuses between 100 and 599, low first, like "200" or "200-399"',
      })
      .default("200-399")
      .describe("http(s): the statuses that mean healthy"),
    rise: z.number().int().min(1).default(2).describe("passing checks in a row that make a down backend up"),
    fall: z.number().int().min(1).default(3).describe("failures in a row (checks or connections) that make an up backend down"),
  })
  .prefault({});

/** "200" or "200-399": HTTP statuses (100-599), the low one first. */
function isStatusRange(v: string): boolean {
  const m = /^(\d{3})(?:-(\d{3}))?$/.exec(v);
  if (!m) return false;
  const lo = Number(m[1]);
  const hi = Number(m[2] ?? m[1]);
  return lo >= 100 && hi <= 599 && lo <= hi;
}

/** The ports of "50000-50099"; undefined when it is not a range. */
function portRange(v: string | undefined): [number, number] | undefined {
  const [lo, hi] = (v ?? "").split("-").map(Number);
  return lo !== undefined && hi !== undefined && v ? [lo, hi] : undefined;
}

const front = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/i, { message: "expected a short name of letters, digits, - and _" })
      .describe("named in logs, metrics and Cache-Status"),
    protocol: z.enum([...WEB_PROTOCOLS, ...TCP_PROTOCOLS]),
    listen: z.array(listenAddress).min(1).describe("addresses of the front; fronts of one kind may share one"),
    hosts: z
      .array(hostPattern)
      .default([])
      .describe("http(s): the names it serves (Host, and SNI for https); *.x for subdomains"),
    backend: z
      .union([z.string(), z.array(z.union([z.string(), webBackend]))])
      .describe("http(s): a URL or a list of URLs; ftp and mail: host:port"),
    balance: z.enum(["round-robin", "first"]).default("round-robin").describe("which healthy backend a request goes to"),
    backendTls: z.enum(["plain", "starttls", "tls"]).default("plain").describe("ftp and mail: TLS towards the backend"),
    clientAddress: clientAddress
      .default("none")
      .describe("passing the client's address on: PROXY protocol v1/v2, or XCLIENT (SMTP)"),
    passive: z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, { message: 'expected a port range like "50000-50099"' })
      .optional()
      .describe("ftp: the front's own passive port range"),
    passiveAddress: z
      .string()
      .optional()
      .describe(
        "ftp: the IPv4 address 227 replies announce (gatehouse's public one, behind NAT); default: the one the client reached",
      ),
    tls: z
      .strictObject({
        cert: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/, { message: "expected the NAME of certs/NAME.crt and NAME.key, like intranet" })
          .optional()
          .describe("certs/NAME.crt + NAME.key; default: chosen by SNI from certs/"),
        hsts: duration("0s").describe("https: Strict-Transport-Security max-age; 0 = not sent"),
      })
      .prefault({}),
    redirectToHttps: z.boolean().default(false).describe("http: answer every request with a redirect to https://"),
    hostHeader: z.string().optional().describe("http(s): the Host the backend gets; default: the client's"),
    trustedProxies: z
      .array(z.string().refine(isAddressOrCidr, { message: "expected an IP address or a CIDR" }))
      .default([])
      .describe("clients whose X-Forwarded-For and Forwarded are kept (a load balancer in front of gatehouse)"),
    cache: z.boolean().default(false).describe("http(s): keep responses in gatehouse's cache (RFC 9111, reverse proxy)"),
    health,
    limits: z
      .strictObject({
        perClient: z.number().int().min(1).default(64).describe("connections open at once from one client address"),
        idleTimeout: duration("0s").describe("an idle connection is closed after this; 0 = the protocol's default"),
      })
      .prefault({}),
  })
  .superRefine((f, ctx) => {
    const web = (WEB_PROTOCOLS as readonly string[]).includes(f.protocol);
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const backends = Array.isArray(f.backend) ? f.backend : [f.backend];
    if (backends.length === 0) issue(["backend"], "expected at least one backend");
    if (web) {
      if (f.hosts.length === 0)
        issue(["hosts"], "an http(s) front needs the names it serves, so a stranger's Host never reaches it");
      backends.forEach((b, i) => {
        if (typeof b === "string" && !backendUrl.safeParse(b).success)
          issue(Array.isArray(f.backend) ? ["backend", i] : ["backend"], 'expected a backend URL like "http://10.0.0.20:8080"');
      });
      if (f.clientAddress === "xclient")
        issue(["clientAddress"], "xclient is for SMTP fronts; http(s) send X-Forwarded-For and Forwarded");
      if (f.passive) issue(["passive"], "passive is for ftp fronts");
      if (f.passiveAddress) issue(["passiveAddress"], "passiveAddress is for ftp fronts");
    } else {
      if (backends.length !== 1 || typeof backends[0] !== "string" || !parseHostAndPort(backends[0]))
        issue(["backend"], 'expected one backend as "host:port", like "10.0.0.30:21"');
      if (f.hosts.length > 0) issue(["hosts"], "hosts is for http(s) fronts");
      if (f.cache) issue(["cache"], "cache is for http(s) fronts");
      if (f.clientAddress === "xclient" && !SMTP.has(f.protocol))
        issue(["clientAddress"], "xclient is for smtp, submission and smtps");
      if ((f.protocol === "ftp" || f.protocol === "ftps") && !f.passive)
        issue(["passive"], 'an ftp front needs its own passive port range, like "50000-50099"');
      if (!f.protocol.startsWith("ftp") && f.passive) issue(["passive"], "passive is for ftp fronts");
      if (!f.protocol.startsWith("ftp") && f.passiveAddress) issue(["passiveAddress"], "passiveAddress is for ftp fronts");
      if (f.passiveAddress && isIP(f.passiveAddress) !== 4)
        issue(
          ["passiveAddress"],
          "expected the IPv4 address clients reach gatehouse at, like 203.0.113.10 (227 replies carry IPv4 only)",
        );
      if (!MAIL.has(f.protocol) && !f.protocol.startsWith("ftp")) issue(["protocol"], "unknown protocol");
    }
    if (f.redirectToHttps && f.protocol !== "http")
      issue(
        ["redirectToHttps"],
        `only applies to protocol http (an http front that sends its clients to https); remove it from this ${f.protocol} front`,
      );
    if (f.passive) {
      const [lo = 0, hi = 0] = f.passive.split("-").map(Number);
      if (lo < 1024 || hi > 65535 || hi < lo) issue(["passive"], "expected a range of ports between 1024 and 65535, low-high");
    }
  });

export type FrontConfig = z.output<typeof front>;

/** Checks across fronts: unique names; a shared listener serves one kind, and no name twice. */
export const fronts = z
  .array(front)
  .default([])
  .superRefine((list, ctx) => {
    const names = new Map<string, number>();
    // Passive ranges: each FTP front listens on every port of its own, so two cannot overlap.
    const passives: { i: number; range: [number, number] }[] = [];
    list.forEach((f, i) => {
      const range = portRange(f.passive);
      if (!range) return;
      const clash = passives.find((p) => p.range[0] <= range[1] && range[0] <= p.range[1]);
      if (clash)
        ctx.addIssue({
          code: "custom",
          path: [i, "passive"],
          message: `overlaps fronts[${clash.i}].passive (${clash.range.join("-")}); each ftp front needs passive ports of its own`,
        });
      passives.push({ i, range });
    });
    const byListen = new Map<string, { i: number; protocol: string; hosts: string[] }[]>();
    list.forEach((f, i) => {
      const other = names.get(f.name);
      if (other !== undefined)
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `fronts[${other}] has the name ${f.name} already` });
      names.set(f.name, i);
      for (const l of f.listen) {
        const key = normalizeListen(l);
        byListen.set(key, [...(byListen.get(key) ?? []), { i, protocol: f.protocol, hosts: f.hosts }]);
      }
    });
    for (const [listen, entries] of byListen) {
      if (entries.length < 2) continue;
      const first = entries[0] as { i: number; protocol: string };
      for (const e of entries.slice(1)) {
        const issue = (message: string) => ctx.addIssue({ code: "custom", path: [e.i, "listen"], message });
        if (
          !(WEB_PROTOCOLS as readonly string[]).includes(e.protocol) ||
          !(WEB_PROTOCOLS as readonly string[]).includes(first.protocol)
        )
          issue(`${listen} is the listener of fronts[${first.i}] already; only http(s) fronts can share one (by Host)`);
        else if (e.protocol !== first.protocol)
          issue(`${listen} serves ${first.protocol} for fronts[${first.i}]; one listener cannot serve both http and https`);
      }
      const seen = new Map<string, number>();
      for (const e of entries) {
        for (const h of e.hosts) {
          const owner = seen.get(h);
          if (owner !== undefined && owner !== e.i)
            ctx.addIssue({
              code: "custom",
              path: [e.i, "hosts"],
              message: `${h} is served by fronts[${owner}] on ${listen} already`,
            });
          seen.set(h, e.i);
        }
      }
    }
  });

function normalizeListen(text: string): string {
  const a = parseListen(text);
  return typeof a === "string" ? text : `${a.host ?? "*"}:${a.port}`;
}
