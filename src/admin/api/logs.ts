import { isIP } from "node:net";
import { normalizeDomain } from "../../rules/domain.js";
import { AdminError, readJson, stringField } from "../http.js";
import { readRuleFile, resolveRuleFile, validate, writeRuleFile } from "../rules-files.js";
import type { LogFilter } from "../stats/recent.js";
import { stream } from "./overview.js";
import { type Ctx, param, type Route } from "./route.js";

const MAX_LINES = 1000;

function filterOf(c: Ctx): LogFilter {
  const before = param(c.url, "before", 20);
  return {
    client: param(c.url, "client", 64),
    name: param(c.url, "name", 255),
    result: param(c.url, "result", 64),
    rule: param(c.url, "rule", 300),
    before: before === undefined ? undefined : Number(before) || undefined,
  };
}

const HEADER = {
  allow: "# Names allowed from the gatehouse dashboard (the name and its subdomains), one a line.\n",
  block: "# Names blocked from the gatehouse dashboard (the name and its subdomains), one a line.\n",
};

/**
 * "Allow this name" / "block this name": the name goes into rules/allow/dashboard.txt or
 * rules/block/dashboard.txt and leaves the other one (an allow entry beats any block, so a name
 * left in allow/dashboard.txt would keep a new block from working). The rules store then applies
 * it like any edit.
 */
async function decide(c: Ctx, name: string, action: "allow" | "block"): Promise<{ file: string; line: number }> {
  const dir = c.src.config.rules;
  const target = await resolveRuleFile(dir, `${action}/dashboard.txt`);
  const other = await resolveRuleFile(dir, `${action === "allow" ? "block" : "allow"}/dashboard.txt`);
  return c.state.serialize(async () => {
    const prior = await readRuleFile(other);
    const kept = prior.text.split("\n").filter((l) => l.trim().toLowerCase() !== name);
    if (kept.length !== prior.text.split("\n").length) await writeRuleFile(other, kept.join("\n"));
    const current = await readRuleFile(target);
    const lines = current.text === "" ? HEADER[action].split("\n") : current.text.split("\n");
    let at = lines.findIndex((l) => l.trim().toLowerCase() === name);
    if (at < 0) {
      if (lines.at(-1) === "") lines.pop();
      lines.push(name, "");
      at = lines.length - 2;
      const text = lines.join("\n");
      const problems = await validate(target, text);
      if (problems.length > 0) {
        throw new AdminError(422, "GH_ADMIN_RULE_ERRORS", `${target.rel} has errors; fix them in the rules page first`, {
          errors: problems,
        });
      }
      await writeRuleFile(target, text);
    }
    return { file: target.rel, line: at + 1 };
  });
}

export const logRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/logs",
    access: "read",
    handle(c) {
      const limit = Math.min(MAX_LINES, Math.max(1, Number(param(c.url, "limit", 6)) || 200));
      const lines = c.state.stats.recent.search(filterOf(c), limit);
      return { lines, held: c.state.stats.recent.size, lastSeq: c.state.stats.recent.lastSeq };
    },
  },
  { method: "GET", path: "/api/logs/stream", access: "read", handle: (c) => stream(c, "logs", filterOf(c)) },
  {
    method: "POST",
    path: "/api/decide",
    access: "change",
    async handle(c) {
      const body = await readJson(c.req, 16 * 1024);
      const action = stringField(body, "action", 10);
      if (action !== "allow" && action !== "block") {
        throw new AdminError(400, "GH_ADMIN_BAD_FIELD", '"action" must be "allow" or "block"');
      }
      const raw = stringField(body, "name", 255) as string;
      const name = normalizeDomain(raw.trim());
      if (!name || isIP(raw.trim()) !== 0) {
        throw new AdminError(
          400,
          "GH_ADMIN_BAD_NAME",
          `"${raw.slice(0, 100)}" is not a domain name; give one like ads.example.com`,
        );
      }
      const target = stringField(body, "target", 2048, false) ?? name;
      const client = stringField(body, "client", 64, false);
      const written = await decide(c, name, action);
      // Applied now rather than at the store's next scan, so the answer shows what is in force.
      c.src.rules.rescan();
      await c.src.rules.settle();
      c.log.info({ name, action, client: c.client, file: written.file }, `admin: ${action} ${name} (${written.file})`);
      const explanation = await c.src.explain(target, client !== undefined && isIP(client) !== 0 ? client : undefined);
      return { name, action, ...written, explanation };
    },
  },
];
