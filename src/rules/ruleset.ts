import type { RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "./domain.js";
import type { DomainList, ListMatch } from "./domain-list.js";
import { Firewall, type FirewallAction, type FirewallQuery } from "./firewall.js";
import type { InterceptList } from "./kinds.js";

export interface DomainVerdict {
  blocked: boolean;
  /** The rule that decided: the block, or the allow/exception that beat it. */
  rule?: RuleRef;
}

export interface DomainExplanation extends DomainVerdict {
  name: string;
  /** Every rule that matched, the deciding one first. */
  matches: (ListMatch & { role: "block" | "allow" })[];
}

export interface PolicyVerdict {
  action: FirewallAction;
  stage: "firewall" | "blocklist" | "default";
  rule?: RuleRef;
  /** Rules that matched but did not decide (explain shows them). */
  lost: RuleRef[];
}

/**
 * One immutable snapshot of the admin's rules; a reload builds a new one and swaps it in. Knows
 * nothing of sockets: the proxy and the DNS ask it the same questions.
 */
export class RuleSet {
  private readonly blockPatterns: DomainList[];
  private readonly allowPatterns: DomainList[];

  constructor(
    readonly lists: readonly DomainList[],
    readonly firewall: Firewall = Firewall.empty("rules/firewall.rules"),
    private readonly interceptLists: readonly InterceptList[] = [],
  ) {
    this.blockPatterns = lists.filter((l) => l.block.hasPatterns);
    this.allowPatterns = lists.filter((l) => l.allow.hasPatterns);
  }

  static empty(): RuleSet {
    return new RuleSet([]);
  }

  /** Is this (canonical) domain blocked by the lists? Allow entries and exceptions beat blocks. */
  checkDomain(name: string): DomainVerdict {
    const allow = this.best(name, "allow");
    if (allow) return { blocked: false, rule: allow };
    const block = this.best(name, "block") ?? this.patterns(name, this.blockPatterns, "block");
    if (!block) return { blocked: false };
    const allowPattern = this.patterns(name, this.allowPatterns, "allow");
    return allowPattern ? { blocked: false, rule: allowPattern } : { blocked: true, rule: block };
  }

  /** The most specific hashed match of one role across every list. */
  private best(name: string, role: "block" | "allow"): RuleRef | undefined {
    let found: { file: string; line: number; text: string; specificity: number } | undefined;
    for (const list of this.lists) {
      const m = list[role].matchHashed(name);
      if (m && (!found || m.specificity > found.specificity)) found = { file: list.file, ...m };
    }
    return found && { file: found.file, line: found.line, text: found.text };
  }

  private patterns(name: string, lists: readonly DomainList[], role: "block" | "allow"): RuleRef | undefined {
    for (const list of lists) {
      const m = list[role].matchPatterns(name);
      if (m) return { file: list.file, line: m.line, text: m.text };
    }
    return undefined;
  }

  /** The rule of rules/intercept.txt or rules/no-intercept.txt that names this host, if any. */
  interceptRule(name: string, which: "intercept" | "no-intercept"): RuleRef | undefined {
    for (const { which: w, list } of this.interceptLists) {
      if (w !== which) continue;
      const m = list.block.matchHashed(name) ?? list.block.matchPatterns(name);
      if (m) return { file: list.file, line: m.line, text: m.text };
    }
    return undefined;
  }

  /** Every list rule that matches the name, for `gatehouse explain`. */
  explainDomain(input: string): DomainExplanation {
    const name = normalizeDomain(input) ?? input.toLowerCase();
    const matches: DomainExplanation["matches"] = [];
    for (const list of this.lists) {
      for (const role of ["allow", "block"] as const) {
        const side = list[role];
        const hashed = side.matchHashed(name);
        if (hashed) matches.push({ file: list.file, ...hashed, exception: role === "allow", role });
        const pattern = side.matchPatterns(name);
        if (pattern) matches.push({ file: list.file, ...pattern, exception: role === "allow", role });
      }
    }
    const verdict = this.checkDomain(name);
    matches.sort((a, b) => rank(b, verdict.rule) - rank(a, verdict.rule));
    return { name, ...verdict, matches };
  }

  /** Firewall first (first match wins), then the blocklists; the default lets office clients through. */
  policy(q: FirewallQuery): PolicyVerdict {
    const fw = this.firewall.evaluate(q);
    if (fw && fw.action !== "allow") return { action: fw.action, stage: "firewall", rule: fw.rule, lost: [] };
    const lost = fw ? [fw.rule] : [];
    const d = this.checkDomain(q.host);
    if (d.blocked) return { action: "block", stage: "blocklist", rule: d.rule, lost };
    if (fw) return { action: "allow", stage: "firewall", rule: fw.rule, lost: d.rule ? [d.rule] : [] };
    return d.rule ? { action: "allow", stage: "blocklist", rule: d.rule, lost } : { action: "allow", stage: "default", lost };
  }
}

function rank(m: ListMatch & { file: string }, decider: RuleRef | undefined): number {
  return decider && m.file === decider.file && m.line === decider.line ? 1_000 : m.specificity;
}
