import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { OfficeCa } from "../../src/tls/ca.js";
import { eventually, startProxy, type TestProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";
import { certsDir, type HttpsOrigin, issue, makeCa, startHttpsOrigin, type TestCa } from "../helpers/tls.js";

// HTTPS interception with real curl as the office client and real TLS origins on loopback whose
// certificates come from a test CA the proxy trusts through certs/upstream-ca/.

interface CurlResult {
  code: number;
  status: number;
  headers: string;
  body: string;
  stderr: string;
}

function curl(proxyPort: number, url: string, extra: string[] = []): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-s", "-S", "--max-time", "10", "-x", `http://127.0.0.1:${proxyPort}`, "-D", "-", ...extra, url],
      { encoding: "utf8" },
      (err, stdout, stderr) => {
        const [headers = "", ...rest] = stdout.split("\r\n\r\n");
        // With a proxy, curl prints the CONNECT response's head first.
        const final = /^HTTP\/1\.1 200 Connection Established/.test(headers) ? rest : [headers, ...rest];
        const head = final[0] ?? "";
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1] ?? 0),
          headers: head,
          body: final.slice(1).join("\r\n\r\n"),
          stderr,
        });
      },
    );
  });
}

describe("HTTPS interception", () => {
  let upstream: TestCa;
  let shop: HttpsOrigin;
  let expired: HttpsOrigin;
  let wrongName: HttpsOrigin;
  let pinned: HttpsOrigin;
  let proxy: TestProxy;
  let certs: string;
  let officeCa: string;
  let upstreamCaFile: string;

  before(async () => {
    upstream = makeCa();
    shop = await startHttpsOrigin(issue(upstream, ["shop.test", "blocked.test"]), (req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "max-age=60" });
      res.end(`shop page ${req.url}`);
    });
    expired = await startHttpsOrigin(
      issue(upstream, ["expired.test"], { from: Date.now() - 10 * 86_400_000, to: Date.now() - 86_400_000 }),
      (_q, s) => s.end("should never be seen"),
    );
    wrongName = await startHttpsOrigin(issue(upstream, ["somewhere-else.test"]), (_q, s) => s.end("should never be seen"));
    pinned = await startHttpsOrigin(issue(upstream, ["pinned.test"]), (_q, s) => s.end("straight from the origin"));
    certs = certsDir(upstream);
    officeCa = OfficeCa.create(certs, "test office CA").certFile;
    upstreamCaFile = join(certs, "upstream-ca", "test.pem");
    const rules = rulesDir({
      hosts: "127.0.0.1 shop.test expired.test wrong.test blocked.test pinned.test\n",
      "block/sites.txt": "blocked.test\n",
      "firewall.rules": "deny to shop.test path /admin\n",
    });
    const ports = [shop.port, expired.port, wrongName.port, pinned.port];
    proxy = await startProxy({
      rules,
      listsDir: join(rules, "lists"),
      certs,
      proxy: { intercept: ["*"], interceptPorts: ports, connectPorts: ports },
    });
  });
  after(async () => {
    await proxy.close();
    await Promise.all([shop.close(), expired.close(), wrongName.close(), pinned.close()]);
  });

  it("decrypts, fetches the origin over verified TLS, and serves the repeat from the cache", async () => {
    const url = `https://shop.test:${shop.port}/page`;
    const first = await curl(proxy.port, url, ["--cacert", officeCa]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.body, "shop page /page");
    const second = await curl(proxy.port, url, ["--cacert", officeCa]);
    assert.equal(second.body, "shop page /page");
    assert.match(second.headers, /cache-status: gatehouse; hit/i);
    assert.equal(shop.requests.filter((r) => r.url === "/page").length, 1);
    await eventually(
      () => proxy.accessLines.some((l) => l.includes(` GET ${url} `)),
      2000,
      "the full https URL in the access log",
    );
  });

  it("applies a path rule to an HTTPS URL", async () => {
    const r = await curl(proxy.port, `https://shop.test:${shop.port}/admin/users`, ["--cacert", officeCa]);
    assert.equal(r.status, 403);
    assert.match(r.body, /firewall\.rules:1: deny to shop\.test path \/admin/);
    assert.equal(shop.requests.filter((q) => q.url.startsWith("/admin")).length, 0);
  });

  it("shows the block page over TLS for a blocked HTTPS site", async () => {
    const r = await curl(proxy.port, `https://blocked.test:${shop.port}/`, ["--cacert", officeCa]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 403);
    assert.match(r.body, /Blocked/);
    assert.match(r.body, /Rule: block\/sites\.txt:1: blocked\.test/);
  });

  for (const [name, host, origin, text] of [
    ["an expired certificate", "expired.test", () => expired, /has expired/],
    ["a certificate for another name", "wrong.test", () => wrongName, /issued for another name/],
  ] as const) {
    it(`answers an origin with ${name} with an error page, never the site`, async () => {
      const r = await curl(proxy.port, `https://${host}:${origin().port}/`, ["--cacert", officeCa]);
      assert.equal(r.status, 502);
      assert.match(r.body, text);
      assert.doesNotMatch(r.body, /should never be seen/);
    });
  }

  it("passes a client through after it refuses the office certificate", async () => {
    const url = `https://pinned.test:${pinned.port}/`;
    // curl without the office CA: like a pinned app, it aborts the handshake.
    const refused = await curl(proxy.port, url, ["--cacert", upstreamCaFile]);
    assert.notEqual(refused.code, 0);
    // Next time the tunnel is relayed: the origin's own certificate reaches the client.
    const through = await curl(proxy.port, url, ["--cacert", upstreamCaFile]);
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.body, "straight from the origin");
    // The dashboard lists the pair.
    assert.ok(proxy.app.tlsStatus.passThrough.some((p) => p.client === "127.0.0.1" && p.host === "pinned.test"));
  });

  it("closes a tunnel whose client sends garbage instead of a ClientHello, and goes on serving", async () => {
    const text = await new Promise<string>((resolve) => {
      const s = connect(proxy.port, "127.0.0.1", () =>
        s.write(`CONNECT shop.test:${shop.port} HTTP/1.1\r\nHost: shop.test\r\n\r\n`),
      );
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString("latin1");
        if (got.endsWith("\r\n\r\n")) s.write("GET / HTTP/1.1\r\n\r\n");
      });
      s.on("close", () => resolve(got));
      s.on("error", () => {});
    });
    assert.equal(text, "HTTP/1.1 200 Connection Established\r\n\r\n");
    const r = await curl(proxy.port, `https://shop.test:${shop.port}/after-garbage`, ["--cacert", officeCa]);
    assert.equal(r.body, "shop page /after-garbage");
  });

  it("serves the CA and its install page at the proxy's own address", async () => {
    const page = await fetch(`http://127.0.0.1:${proxy.port}/ca`);
    assert.match(await page.text(), /Download ca\.crt/);
    const pem = await fetch(`http://127.0.0.1:${proxy.port}/ca.crt`);
    assert.equal(pem.headers.get("content-type"), "application/x-pem-file");
    assert.match(await pem.text(), /^-----BEGIN CERTIFICATE-----/);
    const der = await fetch(`http://127.0.0.1:${proxy.port}/ca.der`);
    assert.equal(der.headers.get("content-type"), "application/x-x509-ca-cert");
  });

  for (const host of ["127.0.0.1", "localhost"]) {
    it(`answers the trust check over HTTPS through the proxy at ${host}, for a browser that trusts the CA`, async () => {
      const r = await curl(proxy.port, `https://${host}:${proxy.port}/ca/check`, ["--cacert", officeCa]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.body, "trusted\n");
    });
  }
});

describe("hostile TLS clients of an intercepting proxy", () => {
  let proxy: TestProxy;
  const lines: { msg: string }[] = [];
  before(async () => {
    const certs = certsDir(makeCa());
    OfficeCa.create(certs, "test office CA");
    const log = pino({ level: "info", base: undefined }, { write: (s: string) => lines.push(JSON.parse(s)) });
    proxy = await startProxy(
      { certs, tls: { handshakeTimeout: "300ms" }, proxy: { intercept: ["*"], interceptPorts: [8443], connectPorts: [8443] } },
      log,
    );
  });
  after(() => proxy.close());

  /** CONNECT, then `send` once the tunnel is up; resolves with everything received when the proxy closes. */
  const tunnel = (send: Buffer | undefined) =>
    new Promise<string>((resolve) => {
      const s = connect(proxy.port, "127.0.0.1", () => s.write("CONNECT stall.test:8443 HTTP/1.1\r\nHost: stall.test\r\n\r\n"));
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString("latin1");
        if (send && got.endsWith("\r\n\r\n") && got.length < 60) s.write(send);
      });
      s.on("close", () => resolve(got));
      s.on("error", () => {});
    });

  it("closes a client that never sends its ClientHello, and logs its address", async () => {
    assert.equal(await tunnel(undefined), "HTTP/1.1 200 Connection Established\r\n\r\n");
    await eventually(
      () => lines.some((l) => /tunnel from 127\.0\.0\.1 closed: no TLS ClientHello within 300 ms/.test(l.msg)),
      3000,
      "logged",
    );
  });

  it("closes a client whose server name is not a host name, and logs why", async () => {
    const hello = Buffer.from(readFileSync(new URL("../fixtures/tls/node-sni-alpn.hex", import.meta.url), "utf8").trim(), "hex");
    // Same length as "shop.example": the name becomes one a host cannot have.
    const at = hello.indexOf(Buffer.from("shop.example"));
    Buffer.from("shop!example").copy(hello, at);
    await tunnel(hello);
    await eventually(() => lines.some((l) => /the server name "shop!example" is not a host name/.test(l.msg)), 3000, "logged");
  });
});

describe("the office CA at start", () => {
  it("refuses to intercept without a CA and says which command makes one", async () => {
    const certs = certsDir(makeCa());
    await assert.rejects(startProxy({ certs, proxy: { intercept: ["*"] } }), /no office CA .* npx gatehouse ca init/);
  });

  it("refuses a CA key that other users can read", async () => {
    const certs = certsDir(makeCa());
    OfficeCa.create(certs, "test office CA");
    chmodSync(join(certs, "ca.key"), 0o644);
    await assert.rejects(startProxy({ certs }), /readable by other users .* chmod 600/);
  });

  it("refuses a corrupt CA certificate with the file's name", async () => {
    const certs = certsDir(makeCa());
    OfficeCa.create(certs, "test office CA");
    writeFileSync(join(certs, "ca.crt"), "not a certificate\n");
    await assert.rejects(startProxy({ certs }), /ca\.crt: not a PEM certificate/);
  });
});
