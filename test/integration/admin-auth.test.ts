import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { TOKEN_FILE } from "../../src/admin/state.js";
import { DiagnosticsError, formatDiagnostic } from "../../src/config/diagnostic.js";
import { parseConfig } from "../../src/config/load.js";
import { OfficeCa } from "../../src/tls/ca.js";
import { call, login, loopbackSession, startAdmin, TEST_PASSWORD, type TestAdmin, testHash } from "../helpers/admin.js";

describe("admin without a password", () => {
  let gh: TestAdmin;
  before(async () => {
    gh = await startAdmin();
  });
  after(() => gh.close());

  it("answers a loopback client with no login", async () => {
    const r = await call(gh.base, "GET", "/api/overview");
    assert.equal(r.status, 200);
    assert.equal(typeof r.body.rates, "object");
  });

  it("refuses a request whose Host is not a loopback name (a page that pointed its own name at 127.0.0.1)", async () => {
    const r = await call(gh.base, "GET", "/api/overview", { headers: { host: "evil.example:8080" } });
    assert.equal(r.status, 403);
    assert.equal(r.body.code, "GH_ADMIN_HOST");
  });

  it("refuses a change with no CSRF token even from loopback", async () => {
    const r = await call(gh.base, "POST", "/api/cache/purge?url=http://example.com/");
    assert.equal(r.status, 403);
    assert.equal(r.body.code, "GH_ADMIN_CSRF");
  });

  it("takes a change with the CSRF token of the session it hands out", async () => {
    const s = await loopbackSession(gh.base);
    const r = await call(gh.base, "POST", "/api/cache/purge?url=http://example.com/", { session: s });
    assert.equal(r.status, 200);
    assert.equal(r.body.purged, 0);
  });

  it("takes a change with the CLI's token from admin.state", async () => {
    const token = readFileSync(join(gh.state, TOKEN_FILE), "utf8").trim();
    const r = await call(gh.base, "POST", "/api/cache/purge?url=http://example.com/", {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 200);
  });
});

describe("admin with a password", () => {
  let gh: TestAdmin;
  before(async () => {
    gh = await startAdmin({ password: await testHash(), admin: { loginAttempts: 3 } });
  });
  after(() => gh.close());

  it("serves the page but no data before a login", async () => {
    assert.equal((await call(gh.base, "GET", "/")).status, 200);
    for (const path of ["/api/overview", "/api/logs", "/api/rules", "/metrics", "/api/events"]) {
      const r = await call(gh.base, "GET", path);
      assert.equal(r.status, 401, path);
      assert.equal(r.body.code, "GH_ADMIN_LOGIN", path);
    }
  });

  it("logs in with the password and sets an HttpOnly SameSite=Strict cookie", async () => {
    const r = await call(gh.base, "POST", "/api/login", { body: { password: TEST_PASSWORD } });
    assert.equal(r.status, 200);
    const cookie = String(r.headers["set-cookie"]);
    assert.match(cookie, /^gatehouse_session=[\w-]{40,};/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    // Plain HTTP: Secure would make the browser drop the cookie.
    assert.doesNotMatch(cookie, /Secure/);
    const s = { cookie: cookie.split(";")[0] as string, csrf: String(r.body.csrf) };
    assert.equal((await call(gh.base, "GET", "/api/overview", { session: s })).status, 200);
  });

  it("refuses a change with a forged CSRF token, and one sent from another site", async () => {
    const s = await login(gh.base);
    const path = "/api/cache/purge?url=http://example.com/";
    const forged = await call(gh.base, "POST", path, { session: s, headers: { "x-csrf-token": "x".repeat(43) } });
    assert.equal(forged.status, 403);
    assert.equal(forged.body.code, "GH_ADMIN_CSRF");
    const missing = await call(gh.base, "POST", path, { session: { ...s, csrf: "" }, headers: { "x-csrf-token": "" } });
    assert.equal(missing.status, 403);
    const crossSite = await call(gh.base, "POST", path, { session: s, headers: { origin: "http://evil.example" } });
    assert.equal(crossSite.status, 403);
    assert.equal(crossSite.body.code, "GH_ADMIN_CROSS_SITE");
    assert.equal((await call(gh.base, "POST", path, { session: s })).status, 200);
  });

  it("ends a session at logout", async () => {
    const s = await login(gh.base);
    assert.equal((await call(gh.base, "POST", "/api/logout", { session: s })).status, 200);
    assert.equal((await call(gh.base, "GET", "/api/overview", { session: s })).status, 401);
  });

  it("accepts the password as HTTP Basic (Prometheus) and refuses a wrong one", async () => {
    const basic = (p: string) => ({ authorization: `Basic ${Buffer.from(`prometheus:${p}`).toString("base64")}` });
    const good = await call(gh.base, "GET", "/metrics", { headers: basic(TEST_PASSWORD) });
    assert.equal(good.status, 200);
    assert.match(good.text, /^gatehouse_http_requests_total|# TYPE gatehouse_http_requests_total counter/m);
    const bad = await call(gh.base, "GET", "/metrics", { headers: basic("nope") });
    assert.equal(bad.status, 401);
  });

  it("refuses a CLI token that is not the one in admin.state", async () => {
    const r = await call(gh.base, "GET", "/api/status", { headers: { authorization: `Bearer ${"a".repeat(43)}` } });
    assert.equal(r.status, 401);
    assert.equal(r.body.code, "GH_ADMIN_BAD_CREDENTIALS");
  });
});

describe("admin login attempts", () => {
  it("answers 429 with Retry-After after admin.loginAttempts wrong passwords, even for the right one", async () => {
    const gh = await startAdmin({ password: await testHash(), admin: { loginAttempts: 2 } });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await call(gh.base, "POST", "/api/login", { body: { password: `guess ${i}` } });
        assert.equal(r.status, 401);
        assert.equal(r.body.code, "GH_ADMIN_BAD_PASSWORD");
      }
      const limited = await call(gh.base, "POST", "/api/login", { body: { password: TEST_PASSWORD } });
      assert.equal(limited.status, 429);
      assert.equal(limited.body.code, "GH_ADMIN_LOGIN_LIMIT");
      assert.ok(Number(limited.headers["retry-after"]) > 0);
      // The admin keeps answering everything else.
      assert.equal((await call(gh.base, "GET", "/api/session")).status, 200);
    } finally {
      await gh.close();
    }
  });
});

describe("admin over TLS (admin.tls)", () => {
  it("serves HTTPS with a certificate from the office CA and marks the session cookie Secure", async () => {
    const certs = mkdtempSync(join(tmpdir(), "gatehouse-certs-"));
    OfficeCa.create(certs, "test office CA");
    const gh = await startAdmin({ password: await testHash(), config: { certs }, admin: { tls: true } });
    const dispatcher = new Agent({ connect: { ca: readFileSync(join(certs, "ca.crt"), "utf8") } });
    try {
      const port = new URL(gh.base).port;
      const res = await request(`https://localhost:${port}/api/login`, {
        method: "POST",
        dispatcher,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ password: TEST_PASSWORD }),
      });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["set-cookie"]), /; HttpOnly; SameSite=Strict; Secure/);
    } finally {
      await dispatcher.close();
      await gh.close();
    }
  });
});

describe("admin.password in the config", () => {
  it("refuses a plain password and says which command makes the hash", () => {
    let problems: string[] = [];
    try {
      parseConfig('admin:\n  password: "hunter2hunter2"\n', "gatehouse.yaml");
    } catch (err) {
      if (!(err instanceof DiagnosticsError)) throw err;
      problems = err.diagnostics.map(formatDiagnostic);
    }
    assert.equal(problems.length, 1);
    assert.match(problems[0] as string, /^gatehouse\.yaml:2: admin\.password: must be a hash made by `gatehouse passwd`/);
    assert.match(problems[0] as string, /npx gatehouse passwd/);
    assert.doesNotMatch(problems[0] as string, /hunter2/);
  });

  it("takes a hash made by gatehouse passwd", async () => {
    const c = parseConfig(`admin:\n  password: "${await testHash()}"\n`, "gatehouse.yaml");
    assert.equal(c.admin.password, await testHash());
  });
});
