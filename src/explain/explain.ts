import { isIP } from "node:net";
import { PASSED } from "../http/chains.js";
import { HttpExchange, type HttpOutcome } from "../http/exchange.js";
import { isLoopback } from "../net/address.js";
import type { Decision, Handler, RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "../rules/domain.js";
import type { RuleSet } from "../rules/ruleset.js";

/** What explain needs from a running (or a files-only) gatehouse: the same code that serves. */
export interface ExplainParts {
  /** The forward chain's deciding stages (chains.ts), ending in PASSED. */
  forward: Handler<HttpExchange, HttpOutcome>;
  /** The resolver's dry run: the same stages as a query, never asking upstream. */
  dns: (name: string, client: string | undefined) => Promise<{ decisions: readonly Decision[] }>;
  rules: RuleSet;
  /** Problems in the rules files (their last good versions are what is in force). */
  problems: number;
}

export interface Explanation {
  target: string;
  client?: string;
  verdict: string;
  /** The HTTP status the proxy would answer with, for URLs it does not let through. */
  status?: number;
  decidedBy?: { stage: string; action: string; reason: string; rule?: RuleRef };
  /** Rules that matched but did not decide. */
  lost: { label: string; rule: RuleRef }[];
  notes: string[];
}

export class ExplainInputError extends Error {}

/** Explains a URL (through the forward chain, then the resolver) or a domain (through the resolver). */
export async function explain(parts: ExplainParts, target: string, client: string | undefined): Promise<Explanation> {
  if (client !== undefined && isIP(client) === 0) throw new ExplainInputError(`--client ${client} is not an IP address`);
  let url: URL | undefined;
  let hostInput = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    try {
      url = new URL(target);
    } catch {
      throw new ExplainInputError(`"${target}" is not a valid URL`);
    }
    hostInput = url.hostname.replace(/^\[|\]$/g, "");
  }
  const host = isIP(hostInput) ? hostInput : normalizeDomain(hostInput);
  if (!host) throw new ExplainInputError(`"${hostInput}" is not a domain name or address`);

  const notes: string[] = [];
  if (parts.problems > 0) notes.push(`${parts.problems} problem(s) in the rules files; run gatehouse check`);
  const port = url ? Number(url.port || (url.protocol === "https:" ? 443 : 80)) : undefined;
  const firewall = parts.rules.policy({
    client,
    host,
    port,
    method: url ? "GET" : undefined,
    path: url?.protocol === "http:" ? url.pathname : undefined,
  });
  const lists = parts.rules.explainDomain(host);
  const candidates = [
    ...firewall.lost.map((rule) => ({ label: "firewall", rule })),
    ...(firewall.stage === "firewall" && firewall.rule ? [{ label: "firewall", rule: firewall.rule }] : []),
    ...lists.matches.map((m) => ({ label: m.role, rule: { file: m.file, line: m.line, text: m.text } })),
  ];
  const lostExcept = (decider: RuleRef | undefined) =>
    candidates.filter((o) => !(decider && o.rule.file === decider.file && o.rule.line === decider.line));

  if (url) {
    const x = explainExchange(url, client);
    const out = await parts.forward(x);
    const decided = [...x.decisions].reverse().find((d) => d.action !== "allow" || d.rule);
    if (out !== PASSED) {
      const d = x.decisions.at(-1);
      const status = out.kind === "response" ? out.status : undefined;
      return {
        target: url.href,
        client,
        verdict: (d?.action ?? "answer").toUpperCase(),
        status,
        decidedBy: d,
        lost: lostExcept(d?.rule),
        notes,
      };
    }
    // Let through by the proxy's own rules: the name is then resolved, and DNS rules (a CNAME
    // chain to a listed name) may still block it.
    const dns = await parts.dns(host, client);
    const dnsBlock = dns.decisions.find((d) => d.action === "block" || d.action === "deny");
    if (dnsBlock)
      return {
        target: url.href,
        client,
        verdict: "BLOCK",
        status: 403,
        decidedBy: dnsBlock,
        lost: lostExcept(dnsBlock.rule),
        notes,
      };
    return { target: url.href, client, verdict: "ALLOW", decidedBy: decided, lost: lostExcept(decided?.rule), notes };
  }
  const dns = await parts.dns(host, client);
  const settled = dns.decisions.find((d) => d.action !== "allow") ?? dns.decisions.find((d) => d.rule);
  const decidedBy =
    settled ??
    (firewall.rule ? { stage: firewall.stage, action: firewall.action, reason: "rule", rule: firewall.rule } : undefined);
  const verdict = !settled ? "ALLOW" : settled.action === "answer" ? "LOCAL" : settled.action.toUpperCase();
  return { target: host, client, verdict, decidedBy, lost: lostExcept(decidedBy?.rule), notes };
}

function explainExchange(url: URL, client: string | undefined): HttpExchange {
  return new HttpExchange({
    ctx: {
      kind: "forward",
      listener: "explain",
      client:
        client === undefined
          ? { address: "-", port: 0, loopback: false, unknown: true }
          : { address: client, port: 0, loopback: isLoopback(client) },
      local: { address: "", port: 0 },
      scheme: "http",
    },
    method: "GET",
    target: url.href,
    headers: { host: url.host, accept: "text/plain" },
    rawHeaders: ["Host", url.host],
    httpVersion: "1.1",
    body: null,
  });
}

const where = (r: RuleRef) => `${r.file}:${r.line}`;

const BY: Record<string, string> = {
  firewall: "the firewall",
  access: "the proxy's access settings",
  acl: "dns.clients",
  self: "the proxy itself",
  target: "the request checks",
  local: "a local record",
  special: "the special-use names",
  cname: "a CNAME target's rule",
};

/** The text `gatehouse explain` prints. */
export function formatExplanation(e: Explanation): string {
  const out: string[] = [`${e.target}: ${e.verdict}`];
  out.push(`  client: ${e.client ?? 'not given (rules with "from" were skipped; add --client IP)'}`);
  const d = e.decidedBy;
  if (d?.rule) {
    const by =
      d.stage === "blocklist"
        ? d.action === "allow"
          ? "an allow entry"
          : "a blocklist"
        : (BY[d.stage] ?? `the ${d.stage} rules`);
    out.push(`  decided by ${by}: ${where(d.rule)}: ${d.rule.text}`);
  } else if (d) {
    out.push(`  decided by ${BY[d.stage] ?? d.stage}: ${d.reason}`);
  } else out.push("  decided by the default: no rule matched, office clients are allowed");
  if (e.lost.length > 0) {
    out.push("  also matched, but did not decide:");
    for (const o of e.lost) out.push(`    ${o.label}: ${where(o.rule)}: ${o.rule.text}`);
  }
  for (const n of e.notes) out.push(`  note: ${n}`);
  return `${out.join("\n")}\n`;
}
