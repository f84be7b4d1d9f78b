import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { formatDiagnostic } from "../../../src/config/diagnostic.js";
import { DomainList } from "../../../src/rules/domain-list.js";
import { parseListLine } from "../../../src/rules/list-parser.js";
import { RuleSet } from "../../../src/rules/ruleset.js";

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/rules/${name}`, import.meta.url), "utf8");

describe("list files compile to entries (golden)", () => {
  it("a file mixing every format compiles to the expected entries", () => {
    const { list, diagnostics } = DomainList.compile("mixed.txt", "block", fixture("mixed.txt"), { keepNames: true });
    assert.deepEqual(diagnostics, []);
    assert.deepEqual(list.describe(), fixture("mixed.expected").trim().split("\n"));
    assert.equal(list.stats.browserOnly, 3);
  });

  it("a bad file reports each bad line with its number and keeps the good ones", () => {
    const { list, diagnostics } = DomainList.compile("bad.txt", "block", fixture("bad.txt"), { keepNames: true });
    assert.deepEqual(diagnostics.map(formatDiagnostic), fixture("bad.expected").trim().split("\n"));
    assert.deepEqual(list.describe(), ["block subtree example.com :8", "block subtree ok.example.com :1"]);
  });
});

describe("line formats", () => {
  const table: [line: string, expected: string][] = [
    ["", "skip"],
    ["# comment", "skip"],
    ["! comment", "skip"],
    ["0.0.0.0 a.example b.example", "domain exact a.example,b.example"],
    ["127.0.0.1\tx.example", "domain exact x.example"],
    [":: x6.example", "domain exact x6.example"],
    ["ads.example.com", "domain subtree ads.example.com"],
    ["ADS.Example.COM.", "domain subtree ads.example.com"],
    ["*.ads.example.com", "domain children ads.example.com"],
    ["||ads.example.com^", "domain subtree ads.example.com"],
    ["@@||ok.example.com^", "exception domain subtree ok.example.com"],
    ["||ads.example.com^$third-party", "browser-only"],
    ["||ads.example.com/banner", "browser-only"],
    ["example.com##.ad", "browser-only"],
    ["|https://x.example/", "browser-only"],
    ["@@/path", "browser-only"],
    ["münchen.example", "domain subtree xn--mnchen-3ya.example"],
    ["/^ad[0-9]+\\./", "regex ^ad[0-9]+\\."],
  ];
  for (const [line, expected] of table) {
    it(`${JSON.stringify(line)} → ${expected}`, () => {
      const p = parseListLine(line);
      const text =
        p.type === "domain"
          ? `${p.exception ? "exception " : ""}domain ${p.match} ${p.names.join(",")}`
          : p.type === "regex"
            ? `regex ${p.pattern.source}`
            : p.type;
      assert.equal(text, expected);
    });
  }
});

describe("decisions", () => {
  const block = DomainList.compile(
    "rules/block/a.txt",
    "block",
    [
      "0.0.0.0 exact.example",
      "tree.example",
      "*.kids.example",
      "||ad.example^",
      "@@||ok.ad.example^",
      "/^tr[0-9]+\\./",
      "ad*.glob.example",
      "münchen.example",
    ].join("\n"),
  ).list;
  const allow = DomainList.compile("rules/allow/a.txt", "allow", ["safe.tree.example", "/^nice\\./"].join("\n")).list;
  const rules = new RuleSet([block, allow]);
  const table: [name: string, blocked: boolean, rule?: string][] = [
    ["exact.example", true, "rules/block/a.txt:1"],
    ["sub.exact.example", false],
    ["tree.example", true, "rules/block/a.txt:2"],
    ["deep.sub.tree.example", true, "rules/block/a.txt:2"],
    ["safe.tree.example", false, "rules/allow/a.txt:1"],
    ["x.safe.tree.example", false, "rules/allow/a.txt:1"],
    ["kids.example", false],
    ["a.kids.example", true, "rules/block/a.txt:3"],
    ["ad.example", true, "rules/block/a.txt:4"],
    ["ok.ad.example", false, "rules/block/a.txt:5"],
    ["tr42.anything.example", true, "rules/block/a.txt:6"],
    ["nice.tree.example", false, "rules/allow/a.txt:2"],
    ["adserver.glob.example", true, "rules/block/a.txt:7"],
    ["glob.example", false],
    ["xn--mnchen-3ya.example", true, "rules/block/a.txt:8"],
    ["unrelated.example", false],
  ];
  for (const [name, blocked, rule] of table) {
    it(`${name} is ${blocked ? "blocked" : "allowed"}${rule ? ` by ${rule}` : ""}`, () => {
      const v = rules.checkDomain(name);
      assert.equal(v.blocked, blocked);
      assert.equal(v.rule ? `${v.rule.file}:${v.rule.line}` : undefined, rule);
    });
  }

  it("explains the allow that won and the block that lost", () => {
    const e = rules.explainDomain("safe.tree.example");
    assert.deepEqual(
      e.matches.map((m) => `${m.role} ${m.file}:${m.line}`),
      ["allow rules/allow/a.txt:1", "block rules/block/a.txt:2"],
    );
  });

  it("picks the most specific block to explain a decision", () => {
    const more = DomainList.compile("rules/block/b.txt", "block", "deep.sub.tree.example\n").list;
    const v = new RuleSet([block, more]).checkDomain("x.deep.sub.tree.example");
    assert.equal(v.rule?.file, "rules/block/b.txt");
  });
});
