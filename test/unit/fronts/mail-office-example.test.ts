import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { configSchema } from "../../../src/config/schema.js";
import { compileZone } from "../../../src/dns/local.js";
import { Firewall } from "../../../src/rules/firewall.js";

// The README's complete office example for the mail and FTP fronts must be what gatehouse accepts:
// the zone with the MX record, the fronts, the firewall rule.

const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("#### A complete office example"));
const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], text: m[2] as string }));

describe("README office example for the FTP and mail fronts", () => {
  it("has its zone file, config and firewall rule", () => assert.ok(blocks.length >= 3));

  it("the zone compiles and points the MX record at gatehouse", () => {
    const { value, diagnostics } = compileZone("rules/zones/office.example.zone", blocks[0]?.text ?? "");
    assert.deepEqual(diagnostics, []);
    const mx = value.records.find((r) => r.name === "office.example" && r.type === 15);
    assert.ok(mx, "an MX record for office.example");
    const a = value.records.find((r) => r.name === "mail.office.example" && r.type === 1);
    assert.ok(a, "an A record for mail.office.example");
  });

  it("the config is valid and has the mail and FTP fronts", () => {
    const config = configSchema.parse(parse(blocks[1]?.text ?? ""));
    assert.deepEqual(
      config.fronts.map((f) => f.protocol),
      ["smtp", "submission", "smtps", "imaps", "pop3s", "ftp"],
    );
  });

  it("the firewall rule compiles", () => {
    assert.deepEqual(Firewall.compile("rules/firewall.rules", blocks[2]?.text ?? "").diagnostics, []);
  });
});
