import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runInNewContext } from "node:vm";
import { verifyPassword } from "../../src/admin/auth/password.js";
import { OfficeCa } from "../../src/tls/ca.js";
import { startAdmin, type TestAdmin } from "../helpers/admin.js";
import { BIN, runGatehouse } from "../helpers/cli.js";
import { dig } from "../helpers/dns.js";
import { viaProxy } from "../helpers/proxy.js";

/** Runs a PAC script the way a browser does, with the helper functions PAC scripts get. */
function findProxy(script: string, url: string): string {
  const toInt = (ip: string) => ip.split(".").reduce((n, p) => n * 256 + Number(p), 0);
  const sandbox = {
    // Chrome's: no dot (an IPv6 literal has none, and the script must not take it for a plain name).
    isPlainHostName: (h: string) => !h.includes("."),
    dnsDomainIs: (h: string, d: string) => h.endsWith(d),
    isInNet: (h: string, net: string, mask: string) => (toInt(h) & toInt(mask)) >>> 0 === (toInt(net) & toInt(mask)) >>> 0,
  };
  runInNewContext(script, sandbox);
  const host = new URL(url).hostname;
  return runInNewContext(`FindProxyForURL(${JSON.stringify(url)}, ${JSON.stringify(host)})`, sandbox) as string;
}

describe("proxy auto-configuration", () => {
  let gh: TestAdmin;
  before(async () => {
    gh = await startAdmin({
      proxy: { pac: { direct: ["office.lan", "203.0.113.0/24", "2001:db8:1::/48"] } },
      files: { hosts: "10.9.9.9 wpad.branch.lan\n" },
    });
  });
  after(() => gh.close());

  for (const path of ["/proxy.pac", "/wpad.dat"]) {
    it(`serves ${path} as application/x-ns-proxy-autoconfig naming the proxy`, async () => {
      const r = await viaProxy(gh.proxyPort, path);
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-type"], "application/x-ns-proxy-autoconfig");
      assert.match(r.body.toString(), new RegExp(`"PROXY 127\\.0\\.0\\.1:${gh.proxyPort}"`));
    });
  }

  const cases: [url: string, expected: "DIRECT" | "PROXY"][] = [
    ["http://intranet/", "DIRECT"],
    ["http://office.lan/", "DIRECT"],
    ["http://files.office.lan/x", "DIRECT"],
    ["http://notoffice.lan/", "PROXY"],
    ["http://192.168.1.20/", "DIRECT"],
    ["http://10.1.2.3:8080/", "DIRECT"],
    ["http://203.0.113.7/", "DIRECT"],
    ["http://198.51.100.7/", "PROXY"],
    ["https://example.com/", "PROXY"],
    ["http://[fd12:3456::7]/", "DIRECT"],
    ["http://[fe80::1]:8080/", "DIRECT"],
    ["http://[2001:db8:1::5]/", "DIRECT"],
    ["http://[2001:db8:2::5]/", "PROXY"],
    ["http://[::ffff:192.168.1.2]/", "PROXY"],
  ];
  for (const [url, expected] of cases) {
    it(`sends ${url} ${expected === "DIRECT" ? "direct" : "through the proxy"}`, async () => {
      const script = (await viaProxy(gh.proxyPort, "/proxy.pac")).body.toString();
      const answer = findProxy(script, url);
      assert.equal(answer, expected === "DIRECT" ? "DIRECT" : `PROXY 127.0.0.1:${gh.proxyPort}`);
    });
  }

  it("answers wpad.<office name> with gatehouse's address for an office client", async () => {
    const r = await dig(gh.dnsPort, ["wpad.office.lan", "A"]);
    assert.equal(r.status, "NOERROR");
    assert.deepEqual(r.answers, ["wpad.office.lan. 300 IN A 127.0.0.1"]);
  });

  it("leaves a wpad name that a local record answers to that record", async () => {
    const r = await dig(gh.dnsPort, ["wpad.branch.lan", "A"]);
    assert.deepEqual(r.answers, ["wpad.branch.lan. 60 IN A 10.9.9.9"]);
  });

  it("does not answer wpad for a name that is not an office name", async () => {
    const r = await dig(gh.dnsPort, ["wpad.example.com", "A"]);
    assert.equal(r.answers.length, 0);
  });
});

describe("proxy auto-configuration for outsiders", () => {
  it("is refused to clients outside proxy.clients", async () => {
    const gh = await startAdmin({ proxy: { clients: ["10.0.0.0/8"] } });
    try {
      const r = await viaProxy(gh.proxyPort, "/proxy.pac");
      assert.equal(r.status, 403);
      assert.doesNotMatch(r.body.toString(), /FindProxyForURL/);
    } finally {
      await gh.close();
    }
  });

  it("answers no wpad name when proxy.pac.wpad is off", async () => {
    const gh = await startAdmin({ proxy: { pac: { direct: ["office.lan"], wpad: false } } });
    try {
      const r = await dig(gh.dnsPort, ["wpad.office.lan", "A"]);
      assert.equal(r.answers.length, 0);
    } finally {
      await gh.close();
    }
  });
});

describe("gatehouse status and passwd", () => {
  it("status prints the listeners, rules, cache and upstreams of the running gatehouse", async () => {
    const gh = await startAdmin({ files: { "block/ads.txt": "a.example\nb.example\n" } });
    try {
      const file = join(gh.state, "gatehouse.yaml");
      writeFileSync(file, `admin:\n  listen: "${gh.base.replace("http://", "")}"\n  state: ${gh.state}\n`);
      const r = await runGatehouse(["status", "-c", file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^  proxy  127\\.0\\.0\\.1:${gh.proxyPort}$`, "m"));
      assert.match(r.stdout, new RegExp(`^  dns    127\\.0\\.0\\.1:${gh.dnsPort}$`, "m"));
      assert.match(r.stdout, /^rules: 2 entries in 1 files \(blocklist 2 in 1 file\), 0 errors$/m);
      assert.match(r.stdout, /^cache: memory 0 entries/m);
      assert.match(r.stdout, /^ {2}127\.0\.0\.1:9 +idle /m);
    } finally {
      await gh.close();
    }
  });

  it("status reaches an admin served over TLS, checking it against the office CA", async () => {
    const certs = mkdtempSync(join(tmpdir(), "gatehouse-certs-"));
    OfficeCa.create(certs, "test office CA");
    const gh = await startAdmin({ config: { certs }, admin: { tls: true } });
    try {
      const file = join(gh.state, "gatehouse.yaml");
      writeFileSync(
        file,
        `certs: ${certs}\nadmin:\n  listen: "${gh.base.replace("http://", "")}"\n  state: ${gh.state}\n  tls: true\n`,
      );
      const r = await runGatehouse(["status", "-c", file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^listeners:$/m);
    } finally {
      await gh.close();
    }
  });

  it("status says so when nothing runs", async () => {
    const gh = await startAdmin();
    const file = join(gh.state, "gatehouse.yaml");
    writeFileSync(file, `admin:\n  listen: "${gh.base.replace("http://", "")}"\n  state: ${gh.state}\n`);
    await gh.close();
    const r = await runGatehouse(["status", "-c", file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no gatehouse answers on http:\/\/127\.0\.0\.1:\d+ \(admin\.listen\); is it running\?/);
  });

  it("passwd prints a hash of the password read from stdin", async () => {
    const child = spawn(process.execPath, [BIN, "passwd"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stdin.end("a long enough secret\n");
    const code = await new Promise<number | null>((r) => child.on("close", r));
    assert.equal(code, 0);
    const hash = out.trim();
    assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
    assert.equal(await verifyPassword("a long enough secret", hash), true);
    assert.equal(await verifyPassword("another secret", hash), false);
  });
});
