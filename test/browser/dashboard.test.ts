import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { startAdmin, TEST_PASSWORD, type TestAdmin, testHash } from "../helpers/admin.js";
import { launchChromium } from "../helpers/browser.js";
import { udpExchange } from "../helpers/dns.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { viaProxy } from "../helpers/proxy.js";

const ADS = "ads.test\n";

describe("the dashboard in a browser", () => {
  let browser: Browser;
  let gh: TestAdmin;
  let origin: Origin;
  let page: Page;

  before(async () => {
    [browser, origin] = await Promise.all([launchChromium(), startOrigin((_req, res) => res.end("page\n"))]);
    gh = await startAdmin({
      password: await testHash(),
      files: { hosts: "127.0.0.1 ads.test news.test\n", "block/ads.txt": ADS },
    });
    page = await browser.newPage();
    page.setDefaultTimeout(10_000);
  });
  after(async () => {
    await browser?.close();
    await gh?.close();
    await origin?.close();
  });

  it("asks for the password, says when it is wrong, and shows the dashboard once it is right", async () => {
    await page.goto(gh.base);
    await page.locator("#login-password").fill("not the password");
    await page.locator("#login-form button").click();
    await page.locator("#login-error", { hasText: "wrong password" }).waitFor();
    await page.locator("#login-password").fill(TEST_PASSWORD);
    await page.locator("#login-form button").click();
    await page.locator("#page-dashboard").waitFor({ state: "visible" });
    await page.locator("#connection", { hasText: "live" }).waitFor();
  });

  it("shows live numbers changing while a client sends requests", async () => {
    const requests = page.locator("#stat-requests");
    const before = Number((await requests.textContent())?.replace(/\D/g, "") || "0");
    for (let i = 0; i < 3; i++) await viaProxy(gh.proxyPort, `http://news.test:${origin.port}/${i}`);
    await page.waitForFunction(
      ([sel, n]) => Number(document.querySelector(sel as string)?.textContent?.replace(/\D/g, "") || "0") >= (n as number) + 3,
      ["#stat-requests", before],
    );
    await page.locator("#top-sites td", { hasText: "news.test" }).waitFor();
  });

  it("allows a blocked name from the log, shows the decision in force, and the next request passes", async () => {
    const url = `http://ads.test:${origin.port}/banner`;
    assert.equal((await viaProxy(gh.proxyPort, url)).status, 403);
    await page.goto(`${gh.base}/#logs`);
    const row = page.locator("#log-lines tr.blocked", { hasText: "ads.test" }).first();
    await row.getByRole("button", { name: "Allow this name" }).click();
    await page.locator("#decision", { hasText: /Now in force .*: ALLOW/ }).waitFor();
    assert.match((await page.locator("#decision").textContent()) ?? "", /allow\/dashboard\.txt:\d+: ads\.test/);
    assert.equal((await viaProxy(gh.proxyPort, url)).status, 200);
  });

  it("shows the errors of a rules edit by line and leaves the file as it was", async () => {
    await page.goto(`${gh.base}/#rules`);
    await page.locator("#rule-files tr", { hasText: "block/ads.txt" }).getByRole("button", { name: "Edit" }).click();
    await page.locator("#rule-text").fill("ads.test\n/(a+)+$/\n");
    await page.locator("#rule-save").click();
    await page.locator("#rule-editor-errors li", { hasText: "block/ads.txt:2:" }).waitFor();
    assert.match((await page.locator("#rule-status").textContent()) ?? "", /was not saved/);
    assert.equal(readFileSync(join(gh.rules, "block", "ads.txt"), "utf8"), ADS);
  });

  it("shows markup in a logged name as text, never as page content", async () => {
    // A query name is any bytes a client sends: this one is an HTML element.
    const labels = ["<img/src=x>", "test"];
    const wire = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    assert.notEqual(await udpExchange(gh.dnsPort, wire, 5000), null);
    await page.goto(`${gh.base}/#logs`);
    await page.locator("#log-lines td", { hasText: "<img/src=x>.test" }).first().waitFor();
    await page.goto(`${gh.base}/#dashboard`);
    await page.locator("#top-domains td", { hasText: "<img/src=x>.test" }).waitFor();
    assert.equal(await page.locator("img").count(), 0);
  });

  it("refuses a change without the CSRF token, and every API call from a browser that has not logged in", async () => {
    const csrfLess = await page.evaluate(async () => {
      const r = await fetch("/api/decide", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "news.test", action: "block" }),
      });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(csrfLess.status, 403);
    assert.equal(csrfLess.body.code, "GH_ADMIN_CSRF");
    const stranger = await browser.newContext();
    try {
      const p = await stranger.newPage();
      await p.goto(gh.base);
      await p.locator("#page-login").waitFor({ state: "visible" });
      const status = await p.evaluate(async () => (await fetch("/api/overview")).status);
      assert.equal(status, 401);
    } finally {
      await stranger.close();
    }
  });
});
