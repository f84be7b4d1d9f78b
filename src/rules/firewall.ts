import { isIP } from "node:net";
import type { Diagnostic } from "../config/diagnostic.js";
import { AddressSet, isAddressOrCidr } from "../net/address.js";
import type { RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "./domain.js";

// rules/firewall.rules: one rule a line, first match wins, then the default (allow for office
// clients). A line reads like a sentence:
//
//   group staff 192.168.1.0/25 192.168.1.200
//   block to *.facebook.com from staff at 09:00-17:00 on mon-fri
//   deny from 192.168.1.66
//   deny port 25
//   block method POST to pastebin.com
//
// Keywords: from (addresses, CIDRs, group names, any), to (domains, *.wildcards, addresses, CIDRs),
// port (80, 8000-8999), method (GET, POST...), path (/prefix), at (HH:MM-HH:MM), on (mon-fri, sat,sun).

export type FirewallAction = "allow" | "deny" | "block";

export interface FirewallQuery {
  /** Undefined when unknown (gatehouse explain without --client): rules with "from" do not match. */
  client: string | undefined;
  /** Canonical domain, or an IP literal. */
  host: string;
  port?: number;
  method?: string;
  path?: string;
  /** The clock for time rules; taken when first needed if not given. */
  now?: Date;
}

interface Rule {
  action: FirewallAction;
  ref: RuleRef;
  from?: AddressSet;
  toNames?: { name: string; children: boolean }[];
  toGlobs?: RegExp[];
  toAddresses?: AddressSet;
  ports?: [number, number][];
  methods?: Set<string>;
  path?: string;
  /** Minutes since midnight; end may be below start (wraps past midnight). */
  time?: [number, number];
  days?: Set<number>;
}

const KEYWORDS = new Set(["from", "to", "port", "method", "path", "at", "on"]);
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

export class Firewall {
  private constructor(
    readonly file: string,
    private readonly rules: Rule[],
    /** The named groups, for settings elsewhere that name them (proxy.interceptClients). */
    readonly groups: ReadonlyMap<string, AddressSet> = new Map(),
  ) {}

  static empty(file: string): Firewall {
    return new Firewall(file, []);
  }

  get size(): number {
    return this.rules.length;
  }

  static compile(file: string, text: string): { firewall: Firewall; diagnostics: Diagnostic[] } {
    const diagnostics: Diagnostic[] = [];
    const lines = text.replace(/^\uFEFF/, "").split("\n");
    const groups = new Map<string, string[]>();
    const problem = (line: number, code: string, message: string) => diagnostics.push({ file, line, code, message });

    // Groups first, so a rule may use a group defined further down.
    for (const [i, raw] of lines.entries()) {
      const words = stripComment(raw).split(/\s+/).filter(Boolean);
      if (words[0]?.toLowerCase() !== "group") continue;
      const [, name, ...members] = words;
      const badMember = members.find((m) => !isAddressOrCidr(m));
      if (!name || !/^[a-z][\w-]*$/i.test(name))
        problem(i + 1, "GH_RULE_BAD_GROUP", 'a group needs a name, like "group staff 192.168.1.0/25"');
      else if (members.length === 0) problem(i + 1, "GH_RULE_BAD_GROUP", `group ${name} has no addresses`);
      else if (badMember) problem(i + 1, "GH_RULE_BAD_CIDR", `"${badMember}" is not an IP address or CIDR like 192.168.1.0/24`);
      else groups.set(name.toLowerCase(), [...(groups.get(name.toLowerCase()) ?? []), ...members]);
    }

    const rules: Rule[] = [];
    for (const [i, raw] of lines.entries()) {
      const lineNo = i + 1;
      const rule = compileRule(file, lineNo, raw, groups, problem);
      if (rule) rules.push(rule);
    }
    diagnostics.sort((a, b) => a.line - b.line);
    const sets = new Map([...groups].map(([name, members]) => [name, new AddressSet(members)] as const));
    return { firewall: new Firewall(file, rules, sets), diagnostics };
  }

  /** The first rule that matches, or undefined (then the default applies). */
  evaluate(q: FirewallQuery): { action: FirewallAction; rule: RuleRef } | undefined {
    if (this.rules.length === 0) return undefined;
    const query = { ...q };
    for (const r of this.rules) if (matches(r, query)) return { action: r.action, rule: r.ref };
    return undefined;
  }
}

function compileRule(
  file: string,
  lineNo: number,
  raw: string,
  groups: Map<string, string[]>,
  problem: (line: number, code: string, message: string) => void,
): Rule | undefined {
  const text = stripComment(raw);
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) return;
  const action = (words[0] as string).toLowerCase();
  if (action === "group") return;
  if (action !== "allow" && action !== "deny" && action !== "block") {
    return void problem(lineNo, "GH_RULE_BAD_ACTION", `a rule starts with allow, deny, block or group, not "${words[0]}"`);
  }
  const rule: Rule = { action, ref: { file, line: lineNo, text } };
  let k = 1;
  while (k < words.length) {
    const key = (words[k] as string).toLowerCase();
    if (!KEYWORDS.has(key)) {
      return void problem(
        lineNo,
        "GH_RULE_BAD_KEYWORD",
        `unknown word "${words[k]}"; expected one of: ${[...KEYWORDS].join(", ")}`,
      );
    }
    // A value list runs to the next keyword; "a, b" and "a,b" both work.
    const values: string[] = [];
    k++;
    while (k < words.length && !KEYWORDS.has((words[k] as string).toLowerCase())) {
      values.push(...(words[k] as string).split(",").filter(Boolean));
      k++;
    }
    if (values.length === 0) return void problem(lineNo, "GH_RULE_MISSING_VALUE", `"${key}" needs a value`);
    const error = applyCondition(rule, key, values, groups);
    if (error) return void problem(lineNo, error.code, error.message);
  }
  return rule;
}

function stripComment(raw: string): string {
  const hash = raw.indexOf("#");
  return (hash >= 0 ? raw.slice(0, hash) : raw).trim();
}

function applyCondition(
  rule: Rule,
  key: string,
  values: string[],
  groups: Map<string, string[]>,
): { code: string; message: string } | undefined {
  switch (key) {
    case "from": {
      if (values.some((v) => v.toLowerCase() === "any")) return undefined;
      const members: string[] = [];
      for (const v of values) {
        const group = groups.get(v.toLowerCase());
        if (group) members.push(...group);
        else if (isAddressOrCidr(v)) members.push(v);
        else if (/^[a-z][\w-]*$/i.test(v) && isIP(v) === 0 && !v.includes(".")) {
          return { code: "GH_RULE_UNKNOWN_GROUP", message: `no group named "${v}"; define it with "group ${v} <addresses>"` };
        } else return { code: "GH_RULE_BAD_CIDR", message: `"${v}" is not an IP address, CIDR or group name` };
      }
      rule.from = new AddressSet(members);
      return undefined;
    }
    case "to": {
      const addresses: string[] = [];
      for (const v of values) {
        if (isAddressOrCidr(v)) {
          addresses.push(v);
          continue;
        }
        const children = v.startsWith("*.");
        const body = children ? v.slice(2) : v;
        if (body.includes("*")) {
          const name = normalizeDomain(body.replace(/\*/g, "x"));
          if (!name) return { code: "GH_RULE_BAD_DOMAIN", message: `"${v}" is not a domain or wildcard` };
          const source = body
            .toLowerCase()
            .split("*")
            .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
            .join(".*");
          (rule.toGlobs ??= []).push(new RegExp(`^${children ? ".+\\." : ""}${source}$`));
          continue;
        }
        const name = normalizeDomain(body);
        if (!name) return { code: "GH_RULE_BAD_DOMAIN", message: `"${v}" is not a domain, address or CIDR` };
        (rule.toNames ??= []).push({ name, children });
      }
      if (addresses.length > 0) rule.toAddresses = new AddressSet(addresses);
      return undefined;
    }
    case "port": {
      rule.ports = [];
      for (const v of values) {
        const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v);
        const lo = Number(m?.[1]);
        const hi = m?.[2] === undefined ? lo : Number(m[2]);
        if (!m || lo < 1 || hi > 65535 || hi < lo)
          return { code: "GH_RULE_BAD_PORT", message: `"${v}" is not a port (1-65535) or a range like 8000-8999` };
        rule.ports.push([lo, hi]);
      }
      return undefined;
    }
    case "method":
      if (values.some((v) => !/^[A-Za-z]+$/.test(v)))
        return { code: "GH_RULE_BAD_METHOD", message: "a method is a word like GET, POST or CONNECT" };
      rule.methods = new Set(values.map((v) => v.toUpperCase()));
      return undefined;
    case "path":
      if (values.length !== 1 || !(values[0] as string).startsWith("/"))
        return { code: "GH_RULE_BAD_PATH", message: 'a path is one prefix starting with "/", like /downloads/' };
      rule.path = values[0];
      return undefined;
    case "at": {
      const m = values.length === 1 ? /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(values[0] as string) : null;
      const nums = m ? m.slice(1).map(Number) : [];
      if (!m || (nums[0] as number) > 24 || (nums[1] as number) > 59 || (nums[2] as number) > 24 || (nums[3] as number) > 59) {
        return { code: "GH_RULE_BAD_TIME", message: "a time range looks like 09:00-17:00 (or 22:00-06:00 across midnight)" };
      }
      rule.time = [(nums[0] as number) * 60 + (nums[1] as number), (nums[2] as number) * 60 + (nums[3] as number)];
      return undefined;
    }
    case "on": {
      const days = new Set<number>();
      for (const v of values) {
        const [a, b] = v.toLowerCase().split("-");
        const from = DAYS.indexOf((a ?? "").slice(0, 3));
        const to = b === undefined ? from : DAYS.indexOf(b.slice(0, 3));
        if (from < 0 || to < 0) return { code: "GH_RULE_BAD_DAY", message: `"${v}" is not a weekday or range like mon-fri` };
        for (let d = from; ; d = (d + 1) % 7) {
          days.add(d);
          if (d === to) break;
        }
      }
      rule.days = days;
      return undefined;
    }
  }
  return undefined;
}

function matches(r: Rule, q: FirewallQuery): boolean {
  if (r.from && (q.client === undefined || !r.from.has(q.client))) return false;
  if (r.toNames || r.toGlobs || r.toAddresses) {
    const ip = isIP(q.host) !== 0;
    const hit =
      (ip && r.toAddresses?.has(q.host)) ||
      (!ip &&
        r.toNames?.some((t) =>
          t.children ? q.host.endsWith(`.${t.name}`) : q.host === t.name || q.host.endsWith(`.${t.name}`),
        )) ||
      (!ip && r.toGlobs?.some((g) => g.test(q.host)));
    if (!hit) return false;
  }
  if (r.ports && (q.port === undefined || !r.ports.some(([lo, hi]) => (q.port as number) >= lo && (q.port as number) <= hi)))
    return false;
  if (r.methods && (q.method === undefined || !r.methods.has(q.method))) return false;
  if (r.path !== undefined && (q.path === undefined || !q.path.startsWith(r.path))) return false;
  if (r.days || r.time) q.now ??= new Date();
  if (r.days && !r.days.has((q.now as Date).getDay())) return false;
  if (r.time) {
    const now = q.now as Date;
    const minute = now.getHours() * 60 + now.getMinutes();
    const [start, end] = r.time;
    const inside = start <= end ? minute >= start && minute < end : minute >= start || minute < end;
    if (!inside) return false;
  }
  return true;
}
