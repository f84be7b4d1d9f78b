import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatDiagnostic } from "../../../src/config/diagnostic.js";
import { Firewall, type FirewallQuery } from "../../../src/rules/firewall.js";
import { unsafeRegexReason } from "../../../src/rules/regex-safety.js";

const FILE = `
group staff 192.168.1.0/25 192.168.1.200
group guests 192.168.50.0/24
deny from guests to 192.168.1.0/24
block to *.social.example from staff at 09:00-17:00 on mon-fri
deny port 25
block method POST to paste.example
block to files.example path /setup
deny to night.example at 22:00-06:00
allow from staff
deny to example.org
`;

// 2026-11-23 is a Monday.
const monday10 = new Date(2026, 10, 23, 10, 0);
const saturday10 = new Date(2026, 10, 28, 10, 0);
const q = (over: Partial<FirewallQuery>): FirewallQuery => ({
  client: "192.168.1.10",
  host: "x.example",
  port: 80,
  method: "GET",
  path: "/",
  now: monday10,
  ...over,
});

describe("firewall rules", () => {
  const { firewall, diagnostics } = Firewall.compile("rules/firewall.rules", FILE);
  it("compiles the example without problems", () => assert.deepEqual(diagnostics, []));

  const table: [name: string, query: FirewallQuery, expected: string][] = [
    ["a guest reaching an office address is denied", q({ client: "192.168.50.7", host: "192.168.1.5" }), "deny :4"],
    ["staff on social media in office hours get the block page", q({ host: "www.social.example" }), "block :5"],
    ["the same on a Saturday is allowed by the staff rule", q({ host: "www.social.example", now: saturday10 }), "allow :10"],
    ["the bare social domain is not matched by *.social.example", q({ host: "social.example" }), "allow :10"],
    ["port 25 is denied for everyone", q({ client: "10.0.0.1", port: 25 }), "deny :6"],
    ["POST to paste.example is blocked", q({ client: "10.0.0.1", host: "paste.example", method: "POST" }), "block :7"],
    ["GET to paste.example passes", q({ client: "10.0.0.1", host: "paste.example" }), "none"],
    ["a path prefix matches", q({ client: "10.0.0.1", host: "files.example", path: "/setup.exe" }), "block :8"],
    ["another path does not", q({ client: "10.0.0.1", host: "files.example", path: "/readme" }), "none"],
    [
      "a time range wraps past midnight",
      q({ client: "10.0.0.1", host: "night.example", now: new Date(2026, 10, 23, 23, 30) }),
      "deny :9",
    ],
    ["outside the wrapped range", q({ client: "10.0.0.1", host: "night.example", now: new Date(2026, 10, 23, 12, 0) }), "none"],
    ["first match wins: staff allowed before the example.org deny", q({ host: "example.org" }), "allow :10"],
    ["others reach the example.org deny, subdomains too", q({ client: "10.0.0.1", host: "www.example.org" }), "deny :11"],
    [
      "a DNS query (no port, method or path) skips rules that need them",
      q({ client: "10.0.0.1", host: "paste.example", port: undefined, method: undefined, path: undefined }),
      "none",
    ],
    ["an unknown client skips rules with from", q({ client: undefined, host: "www.social.example" }), "none"],
  ];
  for (const [name, query, expected] of table) {
    it(name, () => {
      const v = firewall.evaluate(query);
      assert.equal(v ? `${v.action} :${v.rule.line}` : "none", expected);
    });
  }

  it("reports every bad line with its position", () => {
    const bad = Firewall.compile(
      "rules/firewall.rules",
      [
        "permit from any",
        "deny from nobody",
        "deny from 10.0.0.0/33",
        "deny port 70000",
        "deny at 9-5",
        "deny on funday",
        "block color red",
        "deny to",
        "group",
        "deny path downloads",
      ].join("\n"),
    );
    assert.deepEqual(bad.diagnostics.map(formatDiagnostic), [
      'rules/firewall.rules:1: a rule starts with allow, deny, block or group, not "permit"',
      'rules/firewall.rules:2: no group named "nobody"; define it with "group nobody <addresses>"',
      'rules/firewall.rules:3: "10.0.0.0/33" is not an IP address, CIDR or group name',
      'rules/firewall.rules:4: "70000" is not a port (1-65535) or a range like 8000-8999',
      "rules/firewall.rules:5: a time range looks like 09:00-17:00 (or 22:00-06:00 across midnight)",
      'rules/firewall.rules:6: "funday" is not a weekday or range like mon-fri',
      'rules/firewall.rules:7: unknown word "color"; expected one of: from, to, port, method, path, at, on',
      'rules/firewall.rules:8: "to" needs a value',
      'rules/firewall.rules:9: a group needs a name, like "group staff 192.168.1.0/25"',
      'rules/firewall.rules:10: a path is one prefix starting with "/", like /downloads/',
    ]);
    assert.equal(bad.firewall.size, 0);
  });
});

describe("regex safety", () => {
  const table: [pattern: string, safe: boolean][] = [
    ["^ad[0-9]+\\.", true],
    ["(ads|track)\\.example\\.com$", true],
    ["^(a+)+$", false],
    ["(\\w*)*x", false],
    ["(a|ab)*c", false],
    ["^([a-z]+\\.)+example$", false],
    ["(x{2,})+", false],
    ["^(ab){3}$", true],
    ["(.)\\1", false],
  ];
  for (const [pattern, safe] of table) {
    it(`${pattern} is ${safe ? "accepted" : "refused"}`, () => assert.equal(unsafeRegexReason(pattern) === undefined, safe));
  }
});
