import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DiagnosticsError, formatDiagnostic } from "../../../src/config/diagnostic.js";
import { loadConfig, parseConfig } from "../../../src/config/load.js";
import { issue, makeCa } from "../../helpers/tls.js";

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
    ["a duplicate key", "rules: a\nrules: b\n", ["gatehouse.yaml:2: rules: given twice in the same mapping; keep one"]],
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

/** One front entry in flow style, for the tables below. */
const front = (fields: string) => `  - { name: f${frontCount++}, ${fields} }\n`;
let frontCount = 0;
const web = (protocol: string, listen: string, more = "") =>
  front(`protocol: ${protocol}, listen: ["${listen}"], hosts: [h${frontCount}.test], backend: "http://10.0.0.1:80"${more}`);
const tcp = (protocol: string, listen: string, more = "") =>
  front(`protocol: ${protocol}, listen: ["${listen}"], backend: "10.0.0.1:25"${more}`);

describe("config: two listeners on one address", () => {
  const off = 'proxy:\n  listen: []\ndns:\n  listen: []\nadmin:\n  listen: ""\n';
  const cases: [name: string, yaml: string, expected: string[]][] = [
    [
      "a front on proxy.listen",
      `proxy:\n  listen: ["127.0.0.1:21568"]\ndns:\n  listen: []\nfronts:\n${web("http", "127.0.0.1:21568")}`,
      [
        "gatehouse.yaml:6: fronts[0].listen[0]: 127.0.0.1:21568 and proxy.listen[0] (127.0.0.1:21568) would listen on the same address and port; give one of them another port",
      ],
    ],
    [
      'a front on 127.0.0.1 of a proxy on ":3128" (every address)',
      `proxy:\n  listen: [":3128"]\ndns:\n  listen: []\nfronts:\n${web("https", "127.0.0.1:3128")}`,
      [
        "gatehouse.yaml:6: fronts[0].listen[0]: 127.0.0.1:3128 and proxy.listen[0] (:3128, every address) would listen on the same address and port; give one of them another port",
      ],
    ],
    [
      "a front on 0.0.0.0 of the admin's port",
      `proxy:\n  listen: []\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:8080"\nfronts:\n${web("http", "0.0.0.0:8080")}`,
      [
        "gatehouse.yaml:8: fronts[0].listen[0]: 0.0.0.0:8080 (every IPv4 address) and admin.listen (127.0.0.1:8080) would listen on the same address and port; give one of them another port",
      ],
    ],
    [
      "a TCP front on the DNS port (DNS is TCP too)",
      `proxy:\n  listen: []\ndns:\n  listen: ["127.0.0.1:53"]\nfronts:\n${tcp("smtp", ":53")}`,
      [
        "gatehouse.yaml:6: fronts[0].listen[0]: :53 (every address) and dns.listen[0] (127.0.0.1:53) would listen on the same address and port (DNS listens on TCP as well as UDP); give one of them another port",
      ],
    ],
    [
      "the admin on the proxy's address",
      'proxy:\n  listen: ["127.0.0.1:3128"]\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:3128"\n',
      [
        "gatehouse.yaml:6: admin.listen: 127.0.0.1:3128 and proxy.listen[0] (127.0.0.1:3128) would listen on the same address and port; give one of them another port",
      ],
    ],
    [
      'two http fronts on ":80" and "127.0.0.1:80" (two listeners)',
      `${off}fronts:\n${web("http", ":80")}${web("http", "127.0.0.1:80")}`,
      [
        "gatehouse.yaml:9: fronts[1].listen[0]: 127.0.0.1:80 and fronts[0].listen[0] (:80, every address) would listen on the same address and port; give one of them another port",
      ],
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`reports ${name}`, () => assert.deepEqual(errorsOf(yaml), expected));
  }

  const fine: [name: string, yaml: string][] = [
    ["http fronts sharing one address", `${off}fronts:\n${web("http", "127.0.0.1:80")}${web("http", "127.0.0.1:80")}`],
    ["https fronts sharing one address", `${off}fronts:\n${web("https", ":443")}${web("https", ":443")}`],
    [
      "the same port on two addresses",
      'proxy:\n  listen: ["127.0.0.1:3128"]\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.2:3128"\n',
    ],
    [
      "IPv4 every-address beside an IPv6 address",
      'proxy:\n  listen: ["0.0.0.0:3128"]\ndns:\n  listen: []\nadmin:\n  listen: "[::1]:3128"\n',
    ],
    ["port 0 (any free port) twice", 'proxy:\n  listen: ["127.0.0.1:0"]\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:0"\n'],
    ["the defaults", ""],
  ];
  for (const [name, yaml] of fine) {
    it(`accepts ${name}`, () => assert.deepEqual(errorsOf(yaml), []));
  }
});

describe("config: fronts checked with the project's words", () => {
  const off = 'proxy:\n  listen: []\ndns:\n  listen: []\nadmin:\n  listen: ""\nfronts:\n';
  const cases: [name: string, yaml: string, expected: string[]][] = [
    [
      "health.expect outside 100-599",
      off + web("http", ":80", ', health: { expect: "600-700" }'),
      [
        'gatehouse.yaml:8: fronts[0].health.expect: expected a status or a range of statuses between 100 and 599, low first, like "200" or "200-399"',
      ],
    ],
    [
      "health.expect high before low",
      off + web("http", ":80", ', health: { expect: "399-200" }'),
      [
        'gatehouse.yaml:8: fronts[0].health.expect: expected a status or a range of statuses between 100 and 599, low first, like "200" or "200-399"',
      ],
    ],
    [
      "health.path without its slash",
      off + web("http", ":80", ', health: { path: "no-slash" }'),
      ['gatehouse.yaml:8: fronts[0].health.path: expected a path that starts with "/", like /healthz'],
    ],
    [
      "two ftp fronts with overlapping passive ranges",
      off + tcp("ftp", ":21", ', passive: "50000-50099"') + tcp("ftp", ":2121", ', passive: "50050-50150"'),
      [
        "gatehouse.yaml:9: fronts[1].passive: overlaps fronts[0].passive (50000-50099); each ftp front needs passive ports of its own",
      ],
    ],
    [
      "redirectToHttps on an https front",
      off + web("https", ":443", ", redirectToHttps: true"),
      [
        "gatehouse.yaml:8: fronts[0].redirectToHttps: only applies to protocol http (an http front that sends its clients to https); remove it from this https front",
      ],
    ],
    [
      "redirectToHttps on an ftp front",
      off + tcp("ftp", ":21", ', passive: "50000-50099", redirectToHttps: true'),
      [
        "gatehouse.yaml:8: fronts[0].redirectToHttps: only applies to protocol http (an http front that sends its clients to https); remove it from this ftp front",
      ],
    ],
    [
      "a front without its backend",
      `${off}  - name: nobackend\n    protocol: http\n    listen: [":80"]\n    hosts: [a.test]\n`,
      [
        'gatehouse.yaml:8: fronts[0].backend: required but missing; give a URL like "http://10.0.0.20:8080" (or a list of them) for http and https, "host:port" like "10.0.0.30:21" for ftp and mail',
      ],
    ],
    [
      "a backend of the wrong type",
      off + front('protocol: http, listen: [":80"], hosts: [a.test], backend: 5'),
      ["gatehouse.yaml:8: fronts[0].backend: expected a string or a list"],
    ],
    [
      "a tls.cert that is a path",
      off + web("https", ":443", ", tls: { cert: ../secret }"),
      ["gatehouse.yaml:8: fronts[0].tls.cert: expected the NAME of certs/NAME.crt and NAME.key, like intranet"],
    ],
    [
      "a duration with a unit it does not take",
      "dns:\n  cache:\n    maxTtl: 1y\n",
      [
        "gatehouse.yaml:3: dns.cache.maxTtl: expected a duration like 500ms, 30s, 5m, 2h or 180d (units ms, s, m, h, d; combined like 1h30m; a bare number is seconds)",
      ],
    ],
    [
      "a key given twice deep down",
      "proxy:\n  cache:\n    memory: 1MiB\n    memory: 2MiB\n",
      ["gatehouse.yaml:4: proxy.cache.memory: given twice in the same mapping; keep one"],
    ],
    [
      "a list without its url",
      "lists:\n  - type: block\n",
      ["gatehouse.yaml:2: lists[0].url: required but missing; give the http:// or https:// URL it is downloaded from"],
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`reports ${name}`, () => assert.deepEqual(errorsOf(yaml), expected));
  }

  it("accepts durations in days", () =>
    assert.equal(parseConfig("dns:\n  cache:\n    maxTtl: 180d\n", "g.yaml").dns.cache.maxTtl, 180 * 86_400_000));
});

describe("config: the certificate a front names", () => {
  const ca = makeCa();
  const good = issue(ca, ["intranet.test"]);
  const expired = issue(ca, ["old.test"], { from: Date.now() - 10 * 86_400_000, to: Date.now() - 86_400_000 });
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-config-certs-"));
  mkdirSync(join(dir, "certs"));
  writeFileSync(join(dir, "certs", "intranet.crt"), good.cert);
  writeFileSync(join(dir, "certs", "intranet.key"), good.key);
  writeFileSync(join(dir, "certs", "old.crt"), expired.cert);
  writeFileSync(join(dir, "certs", "old.key"), expired.key);
  writeFileSync(join(dir, "certs", "lonely.crt"), good.cert);
  const config = (cert: string) => {
    const file = join(dir, `${cert}.yaml`);
    writeFileSync(
      file,
      `proxy:\n  listen: []\ndns:\n  listen: []\nadmin:\n  listen: ""\nfronts:\n  - name: intranet\n    protocol: https\n    listen: ["127.0.0.1:8443"]\n    hosts: [intranet.test]\n    backend: "http://10.0.0.1:80"\n    tls:\n      cert: ${cert}\n`,
    );
    return file;
  };
  const errorsLoading = (file: string, opts?: { files?: boolean }) => {
    try {
      loadConfig(file, opts);
    } catch (err) {
      if (err instanceof DiagnosticsError) return err.diagnostics.map((d) => formatDiagnostic({ ...d, file: "g.yaml" }));
      throw err;
    }
    return [];
  };
  const cases: [cert: string, expected: string[]][] = [
    ["intranet", []],
    [
      "missing",
      [
        "g.yaml:14: fronts[0].tls.cert: certs/missing.crt and certs/missing.key not found; put the certificate (its chain after it) and its key there, or leave tls.cert out to choose by the name clients ask for (SNI) from ./certs",
      ],
    ],
    ["lonely", ["g.yaml:14: fronts[0].tls.cert: certs/lonely.key not found beside certs/lonely.crt; put its private key there"]],
  ];
  for (const [cert, expected] of cases) {
    it(`tls.cert: ${cert}`, () => assert.deepEqual(errorsLoading(config(cert)), expected));
  }
  it("tls.cert: a pair with errors says which", () => {
    const [line = "", ...rest] = errorsLoading(config("old"));
    assert.deepEqual(rest, []);
    assert.match(
      line,
      /^g\.yaml:14: fronts\[0\]\.tls\.cert: certs\/old\.crt and certs\/old\.key have errors: expired on .*; renew it; fix the pair/,
    );
  });
  it("is not read by commands that only talk to the running gatehouse", () =>
    assert.deepEqual(errorsLoading(config("missing"), { files: false }), []));
});
