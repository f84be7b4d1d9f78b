import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { DiagnosticsError, formatDiagnostic } from "../../../src/config/diagnostic.js";
import { parseConfig } from "../../../src/config/load.js";

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/config/${name}`, import.meta.url), "utf8");

function errorsOf(text: string, file = "gatehouse.yaml"): string[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    if (err instanceof DiagnosticsError) return err.diagnostics.map(formatDiagnostic);
    throw err;
  }
  return [];
}

describe("config loading", () => {
  it("gives every default when the file is empty", () => {
    const c = parseConfig("", "gatehouse.yaml");
    assert.equal(c.proxy.cache.memory, 256 * 1024 * 1024);
    assert.deepEqual(c.proxy.listen, [":3128"]);
    assert.deepEqual(c.dns.listen, [":53"]);
    assert.equal(c.admin.listen, "127.0.0.1:8080");
    assert.equal(c.proxy.upstream.maxConnectionsPerOrigin, 256);
    assert.deepEqual(c.proxy.connectPorts, [443]);
  });

  it("reports every problem of a bad file with its line (golden)", () => {
    assert.deepEqual(errorsOf(fixture("bad.yaml"), "bad.yaml"), fixture("bad.expected").trim().split("\n"));
  });

  const cases: [name: string, yaml: string, expected: string[]][] = [
    [
      "a size that is not a size",
      "proxy:\n  cache:\n    memory: lots\n",
      ["gatehouse.yaml:3: proxy.cache.memory: expected a size like 256MiB"],
    ],
    [
      "an unknown top-level key",
      "prxy:\n  listen: []\n",
      ["gatehouse.yaml:1: prxy: unknown key; check the spelling against the README's config table"],
    ],
    ["a wrong type", "proxy:\n  forwardedFor: maybe\n", ["gatehouse.yaml:2: proxy.forwardedFor: expected a boolean"]],
    [
      "a bad enum",
      "log:\n  access:\n    format: csv\n",
      ['gatehouse.yaml:3: log.access.format: expected one of "squid", "json"'],
    ],
    [
      "a YAML syntax error",
      "proxy: [\n",
      ["gatehouse.yaml:2: Flow sequence in block collection must be sufficiently indented and end with a ]; fix the YAML syntax"],
    ],
    ["a duplicate key", "rules: a\nrules: b\n", ["gatehouse.yaml:2: Map keys must be unique; fix the YAML syntax"]],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`reports ${name}`, () => assert.deepEqual(errorsOf(yaml), expected));
  }

  const good: [name: string, yaml: string, check: (c: ReturnType<typeof parseConfig>) => void][] = [
    [
      "sizes in several units",
      "proxy:\n  cache:\n    memory: 1GiB\n    maxObject: 512k\n",
      (c) => {
        assert.equal(c.proxy.cache.memory, 1024 ** 3);
        assert.equal(c.proxy.cache.maxObject, 512 * 1024);
      },
    ],
    [
      "durations",
      "proxy:\n  limits:\n    headerTimeout: 1m30s\n    idleTimeout: 500ms\n",
      (c) => {
        assert.equal(c.proxy.limits.headerTimeout, 90_000);
        assert.equal(c.proxy.limits.idleTimeout, 500);
      },
    ],
    [
      "an empty listen list turns the part off",
      "proxy:\n  listen: []\ndns:\n  listen: []\n",
      (c) => {
        assert.deepEqual(c.proxy.listen, []);
        assert.deepEqual(c.dns.listen, []);
      },
    ],
  ];
  for (const [name, yaml, check] of good) {
    it(`accepts ${name}`, () => check(parseConfig(yaml, "gatehouse.yaml")));
  }
});
