import { isIP } from "node:net";
import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";
import { DNS_FILE_KINDS } from "../dns/local.js";
import type { RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "../rules/domain.js";
import { Rules } from "../rules/rules.js";

const where = (r: RuleRef) => `${r.file}:${r.line}`;

/** gatehouse explain URL|DOMAIN [--client IP]: the decision, the rule behind it, and the rules that lost. */
export async function explainCommand(args: {
  config?: string;
  positionals: string[];
  values: Record<string, unknown>;
}): Promise<number> {
  const target = args.positionals[0];
  if (!target) {
    process.stderr.write("usage: gatehouse explain URL|DOMAIN [--client IP] [-c FILE]\n");
    return 2;
  }
  const client = args.values.client as string | undefined;
  if (client !== undefined && isIP(client) === 0) {
    process.stderr.write(`gatehouse explain: --client ${client} is not an IP address\n`);
    return 2;
  }
  let url: URL | undefined;
  let hostInput = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    try {
      url = new URL(target);
      hostInput = url.hostname.replace(/^\[|\]$/g, "");
    } catch {
      process.stderr.write(`gatehouse explain: "${target}" is not a valid URL\n`);
      return 2;
    }
  }
  const host = isIP(hostInput) ? hostInput : normalizeDomain(hostInput);
  if (!host) {
    process.stderr.write(`gatehouse explain: "${hostInput}" is not a domain name or address\n`);
    return 2;
  }
  let rules: Rules;
  try {
    rules = new Rules(loadConfig(args.config).config, undefined, DNS_FILE_KINDS);
  } catch (err) {
    if (!(err instanceof DiagnosticsError)) throw err;
    for (const d of err.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return 1;
  }
  const port = url ? Number(url.port || (url.protocol === "https:" ? 443 : 80)) : undefined;
  const verdict = rules.current.policy({
    client,
    host,
    port,
    method: url ? "GET" : undefined,
    path: url?.protocol === "http:" ? url.pathname : undefined,
  });
  const lists = rules.current.explainDomain(host);
  const out: string[] = [];
  out.push(`${url ? url.href : host}: ${verdict.action.toUpperCase()}`);
  out.push(`  client: ${client ?? 'not given (rules with "from" were skipped; add --client IP)'}`);
  const by = verdict.stage === "blocklist" ? (verdict.action === "allow" ? "an allow entry" : "a blocklist") : "the firewall";
  if (verdict.rule) out.push(`  decided by ${by}: ${where(verdict.rule)}: ${verdict.rule.text}`);
  else out.push("  decided by the default: no rule matched, office clients are allowed");
  const deciding = verdict.rule;
  const others = [
    ...verdict.lost.map((r) => ({ ref: r, label: "firewall" })),
    ...lists.matches.map((m) => ({ ref: { file: m.file, line: m.line, text: m.text }, label: m.role })),
  ].filter((o) => !(deciding && o.ref.file === deciding.file && o.ref.line === deciding.line));
  if (others.length > 0) {
    out.push("  also matched, but did not decide:");
    for (const o of others) out.push(`    ${o.label}: ${where(o.ref)}: ${o.ref.text}`);
  }
  const problems = rules.diagnostics();
  if (problems.length > 0) out.push(`  note: ${problems.length} problem(s) in the rules files; run gatehouse check`);
  rules.close();
  process.stdout.write(`${out.join("\n")}\n`);
  return 0;
}
