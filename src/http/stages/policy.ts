import { isIP } from "node:net";
import type { Stage } from "../../pipeline/stage.js";
import { normalizeDomain } from "../../rules/domain.js";
import type { FirewallQuery } from "../../rules/firewall.js";
import type { PolicyVerdict, RuleSet } from "../../rules/ruleset.js";
import type { HttpExchange, HttpOutcome } from "../exchange.js";
import type { PageMaker } from "../pages.js";

/**
 * The admin's rules for one request: firewall.rules first (first match wins), then the block and
 * allow lists. Reads the current RuleSet on every request, so a reload applies to the next one.
 * Fronts use the firewall alone (`lists: false`): the lists say what office clients may visit, the
 * firewall also who may reach the office's own servers.
 */
export function policyStage(
  rules: () => RuleSet,
  page: PageMaker,
  opts: { lists: boolean } = { lists: true },
): Stage<HttpExchange, HttpOutcome> {
  return {
    name: "policy",
    handle(x, next) {
      const host = isIP(x.host) ? x.host : (normalizeDomain(x.host) ?? x.host);
      const query = {
        client: x.client.unknown ? undefined : x.client.address,
        host,
        port: x.port,
        method: x.method,
        path: x.connect ? undefined : x.url.pathname,
      };
      const verdict = opts.lists ? rules().policy(query) : firewallOnly(rules(), query);
      if (verdict.action === "allow") {
        if (verdict.rule)
          x.decisions.push({ stage: verdict.stage, action: "allow", reason: "allowed by rule", rule: verdict.rule });
        return next(x);
      }
      const rule = verdict.rule;
      const where = rule ? ` by ${rule.file}:${rule.line}` : "";
      x.decisions.push({ stage: verdict.stage, action: verdict.action, reason: `${verdict.action}${where}`, rule });
      x.log.cache = "TCP_DENIED";
      const what = x.connect ? `${x.host}:${x.port}` : x.url.href;
      if (verdict.action === "deny") {
        return Promise.resolve(
          page(x, {
            status: 403,
            title: "Access denied",
            message: `The office firewall does not allow this connection to ${what}.`,
            rule,
          }),
        );
      }
      return Promise.resolve(
        page(x, {
          status: 403,
          title: "Blocked",
          message: `${x.host} is blocked by the office's ${verdict.stage === "firewall" ? "firewall rules" : "blocklist"}.`,
          details: [`Blocked ${what}`],
          rule,
        }),
      );
    },
  };
}

function firewallOnly(rules: RuleSet, q: FirewallQuery): PolicyVerdict {
  const fw = rules.firewall.evaluate(q);
  if (!fw) return { action: "allow", stage: "default", lost: [] };
  return { action: fw.action, stage: "firewall", rule: fw.rule, lost: [] };
}
