import { isIP } from "node:net";
import type { Stage } from "../../pipeline/stage.js";
import { normalizeDomain } from "../../rules/domain.js";
import type { RuleSet } from "../../rules/ruleset.js";
import type { HttpExchange, HttpOutcome } from "../exchange.js";
import type { PageMaker } from "../pages.js";

/**
 * The admin's rules for one request: firewall.rules first (first match wins), then the block and
 * allow lists. Reads the current RuleSet on every request, so a reload applies to the next one.
 */
export function policyStage(rules: () => RuleSet, page: PageMaker): Stage<HttpExchange, HttpOutcome> {
  return {
    name: "policy",
    handle(x, next) {
      const host = isIP(x.host) ? x.host : (normalizeDomain(x.host) ?? x.host);
      const verdict = rules().policy({
        client: x.client.unknown ? undefined : x.client.address,
        host,
        port: x.port,
        method: x.method,
        path: x.connect ? undefined : x.url.pathname,
      });
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
