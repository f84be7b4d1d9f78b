import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { MirroredRules, type RulesDelta } from "../../../src/cluster/rules-mirror.js";
import { DNS_FILE_KINDS, hostsFile } from "../../../src/dns/local.js";
import { allowFiles, blockFiles, firewallFile, interceptFiles } from "../../../src/rules/kinds.js";
import { Rules } from "../../../src/rules/rules.js";
import { rulesDir, writeRule } from "../../helpers/rules.js";

// What a worker holds must decide exactly as the supervisor's own files do, after crossing the
// IPC channel (structured clone, as node:cluster's "advanced" serialization does).

const KINDS = [blockFiles, allowFiles, firewallFile, interceptFiles, ...DNS_FILE_KINDS];

function loaded(files: Record<string, string>): { rules: Rules; dir: string } {
  const dir = rulesDir(files);
  const rules = new Rules({ rules: dir, lists: [], listsDir: `${dir}/no-lists` }, undefined, DNS_FILE_KINDS);
  rules.load();
  return { rules, dir };
}

/** Through the same serializer as the cluster's IPC. */
function delta(rules: Rules, known?: ReadonlyMap<string, string>): RulesDelta {
  const { entries, stamps } = rules.snapshot(known);
  return deserialize(serialize({ entries, stamps: [...stamps] })) as RulesDelta;
}

function mirrorOf(d: RulesDelta): MirroredRules {
  const m = new MirroredRules(KINDS, () => ["/rules"]);
  m.prepare(d);
  m.commit();
  return m;
}

const FILES = {
  "block/ads.txt": "ads.example\n||tracker.example^\n",
  "allow/office.txt": "ok.ads.example\n",
  "firewall.rules": "deny from 10.9.9.9\nblock to *.games.example\n",
  hosts: "192.0.2.10 printer.office.lan\n",
};

describe("rules handed to a worker", () => {
  const cases: [name: string, host: string, client: string][] = [
    ["a blocklist entry", "ads.example", "10.0.0.1"],
    ["a subdomain of an adblock rule", "x.tracker.example", "10.0.0.1"],
    ["an allow entry beating a block", "ok.ads.example", "10.0.0.1"],
    ["a firewall block", "a.games.example", "10.0.0.1"],
    ["a firewall deny by client", "example.org", "10.9.9.9"],
    ["nothing matching", "example.org", "10.0.0.1"],
  ];
  const { rules } = loaded(FILES);
  const mirror = mirrorOf(delta(rules));
  for (const [name, host, client] of cases) {
    it(`decide as the supervisor's files do: ${name}`, () => {
      assert.deepEqual(mirror.current.policy({ client, host }), rules.current.policy({ client, host }));
    });
  }

  it("carry the DNS local records as compiled by the supervisor", () => {
    assert.deepEqual(mirror.values(hostsFile), rules.values(hostsFile));
    assert.deepEqual(mirror.summary(), rules.summary());
  });

  it("carry lists compiled and the firewall as its text", () => {
    const payload = (suffix: string) => delta(rules).entries.find((e) => e.display.endsWith(suffix))?.payload ?? {};
    assert.ok("packed" in payload("block/ads.txt"));
    assert.ok("text" in payload("firewall.rules"));
  });

  it("send only the files that changed, and every path still in force", () => {
    const { rules: r, dir } = loaded(FILES);
    const first = delta(r);
    const mirror = mirrorOf(first);
    writeRule(dir, "firewall.rules", "block to *.films.example\n");
    r.rescan();
    const next = delta(r, new Map(first.stamps));
    assert.deepEqual(
      next.entries.map((e) => e.display.endsWith("firewall.rules")),
      [true],
    );
    assert.equal(next.stamps.length, first.stamps.length);
    mirror.prepare(next);
    mirror.commit();
    assert.equal(mirror.current.policy({ client: "10.0.0.1", host: "a.films.example" }).action, "block");
    assert.equal(mirror.current.checkDomain("ads.example").blocked, true, "the list it did not resend stays");
  });

  it("do not change what is in force until commit, nor after abort", () => {
    const { rules: r, dir } = loaded(FILES);
    const first = delta(r);
    const mirror = mirrorOf(first);
    let changes = 0;
    mirror.onChange(() => changes++);
    writeRule(dir, "block/ads.txt", "other.example\n");
    r.rescan();
    mirror.prepare(delta(r, new Map(first.stamps)));
    assert.equal(mirror.current.checkDomain("ads.example").blocked, true);
    mirror.abort();
    mirror.commit();
    assert.equal(mirror.current.checkDomain("ads.example").blocked, true);
    assert.equal(changes, 0);
  });

  it("refuse a change that leaves out a file the worker does not hold", () => {
    const { rules: r } = loaded(FILES);
    const full = delta(r);
    const mirror = new MirroredRules(KINDS, () => ["/rules"]);
    assert.throws(() => mirror.prepare({ entries: full.entries.slice(1), stamps: full.stamps }), /handed over without/);
  });
});
