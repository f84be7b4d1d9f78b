import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { OfficeCa } from "../../src/tls/ca.js";
import { launchChromium } from "../helpers/browser.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";
import { certsDir, type HttpsOrigin, issue, makeCa, startHttpsOrigin } from "../helpers/tls.js";

// A real browser (Debian's chromium, driven by playwright-core; never a downloaded one) whose NSS
// database trusts the office CA, as `gatehouse ca` tells admins to set it up, browsing through the
// proxy: an intercepted page loads with no certificate warning.

describe("Chromium through an intercepting proxy", () => {
  let origin: HttpsOrigin;
  let proxy: TestProxy;
  let home: string;

  before(async () => {
    const upstream = makeCa();
    origin = await startHttpsOrigin(issue(upstream, ["shop.test"]), (_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>shop</title><h1>Welcome to the shop</h1>");
    });
    const certs = certsDir(upstream);
    const ca = OfficeCa.create(certs, "test office CA");
    // Chromium on Linux reads trusted roots from $HOME/.pki/nssdb (what certutil writes).
    home = mkdtempSync(join(tmpdir(), "gatehouse-chromium-"));
    const db = join(home, ".pki", "nssdb");
    mkdirSync(db, { recursive: true });
    execFileSync("certutil", ["-N", "-d", `sql:${db}`, "--empty-password"]);
    execFileSync("certutil", ["-A", "-d", `sql:${db}`, "-t", "C,,", "-n", "gatehouse office CA", "-i", ca.certFile]);
    const rules = rulesDir({ hosts: "127.0.0.1 shop.test\n" });
    proxy = await startProxy({
      rules,
      listsDir: join(rules, "lists"),
      certs,
      proxy: { intercept: ["shop.test"], interceptPorts: [origin.port], connectPorts: [origin.port] },
    });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  it("loads an intercepted page with no certificate warning", async () => {
    const browser = await launchChromium({
      env: { ...process.env, HOME: home },
      // Chromium sends loopback straight by default; "<-loopback>" makes it use the proxy for it too.
      args: [`--proxy-server=http://127.0.0.1:${proxy.port}`, "--proxy-bypass-list=<-loopback>"],
    });
    try {
      const page = await browser.newPage();
      const response = await page.goto(`https://shop.test:${origin.port}/`);
      assert.equal(response?.status(), 200);
      assert.equal(await page.textContent("h1"), "Welcome to the shop");
      const issuer = (await response?.securityDetails())?.issuer;
      assert.equal(issuer, "test office CA");
    } finally {
      await browser.close();
    }
  });
});
