import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { call, loopbackSession, type Session, startAdmin, type TestAdmin } from "../helpers/admin.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { viaProxy } from "../helpers/proxy.js";

interface Explanation {
  verdict: string;
  decidedBy?: { rule?: { file: string; line: number; text: string } };
}

describe("rules edited from the admin", () => {
  let gh: TestAdmin;
  let s: Session;
  let outside: string;
  before(async () => {
    gh = await startAdmin({ files: { "block/ads.txt": "ads.example\n", "firewall.rules": "deny port 25\n" } });
    s = await loopbackSession(gh.base);
    // Something outside rules/ that a path trick could reach: it must stay as it is.
    outside = mkdtempSync(join(tmpdir(), "gatehouse-outside-"));
    writeFileSync(join(outside, "victim.txt"), "untouched\n");
    symlinkSync(join(outside, "victim.txt"), join(gh.rules, "block", "link.txt"));
    symlinkSync(outside, join(gh.rules, "blockdir"));
    mkdirSync(join(gh.rules, "allow"), { recursive: true });
    symlinkSync(outside, join(gh.rules, "allow", "sub"));
  });
  after(() => gh.close());

  it("lists every rules file with its kind, entries, errors and last change", async () => {
    const r = await call<{
      files: { path: string; kind: string; entries: number; errors: number; changed: number; editable: boolean }[];
    }>(gh.base, "GET", "/api/rules");
    const ads = r.body.files.find((f) => f.path === "block/ads.txt");
    assert.equal(ads?.kind, "blocklist");
    assert.equal(ads?.entries, 1);
    assert.equal(ads?.errors, 0);
    assert.equal(ads?.editable, true);
    assert.ok((ads?.changed ?? 0) > 0);
    assert.ok(r.body.files.some((f) => f.path === "firewall.rules" && f.kind === "firewall"));
  });

  const badPaths: [what: string, path: string][] = [
    ["a path climbing out with ..", "../victim.txt"],
    ["a path climbing out in the middle", "block/../../victim.txt"],
    ["an absolute path", join(tmpdir(), "x.txt")],
    ["a symbolic link to a file outside", "block/link.txt"],
    ["a path through a symbolic link to a directory", "blockdir/victim.txt"],
    ["a path through a linked subdirectory", "allow/sub/victim.txt"],
    ["a hidden file", "block/.secret.txt"],
    ["a file the rules store does not read", "notes.md"],
    ["a backslash", "block\\ads.txt"],
    ["an encoded NUL", "block/ads.txt\u0000.txt"],
  ];
  for (const [what, path] of badPaths) {
    it(`refuses ${what} and writes nothing`, async () => {
      const before = readdirSync(outside).sort();
      const r = await call(gh.base, "PUT", "/api/rules/file", { session: s, body: { path, text: "evil.example\n" } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.code, "GH_ADMIN_BAD_PATH");
      assert.equal(readFileSync(join(outside, "victim.txt"), "utf8"), "untouched\n");
      assert.deepEqual(readdirSync(outside).sort(), before);
      assert.equal((await call(gh.base, "GET", `/api/rules/file?path=${encodeURIComponent(path)}`)).status, 400);
    });
  }

  it("does not save a file with errors, and names each bad line", async () => {
    const file = join(gh.rules, "firewall.rules");
    const r = await call<{ code: string; errors: { line: number; text: string }[] }>(gh.base, "PUT", "/api/rules/file", {
      session: s,
      body: { path: "firewall.rules", text: "deny port 25\nallow from 300.1.1.1\nfrobnicate\n" },
    });
    assert.equal(r.status, 422);
    assert.equal(r.body.code, "GH_ADMIN_RULE_ERRORS");
    assert.deepEqual(
      r.body.errors.map((e) => e.line),
      [2, 3],
    );
    assert.match(r.body.errors[0]?.text as string, /^firewall\.rules:2: /);
    assert.equal(readFileSync(file, "utf8"), "deny port 25\n");
  });

  it("saves a good file and applies it at once", async () => {
    const got = await call<{ version: string; text: string }>(gh.base, "GET", "/api/rules/file?path=block/ads.txt");
    assert.equal(got.body.text, "ads.example\n");
    const put = await call<{ entries: number }>(gh.base, "PUT", "/api/rules/file", {
      session: s,
      body: { path: "block/ads.txt", text: "ads.example\nmore.example\n", version: got.body.version },
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.entries, 2);
    const e = await call<Explanation>(gh.base, "GET", "/api/explain?target=more.example");
    assert.equal(e.body.verdict, "BLOCK");
    assert.deepEqual(e.body.decidedBy?.rule, { file: join(gh.rules, "block", "ads.txt"), line: 2, text: "more.example" });
  });

  it("refuses to save over a change made since the file was opened (409)", async () => {
    const got = await call<{ version: string }>(gh.base, "GET", "/api/rules/file?path=block/ads.txt");
    writeFileSync(join(gh.rules, "block", "ads.txt"), "ads.example\nedited.on.server\n");
    const put = await call(gh.base, "PUT", "/api/rules/file", {
      session: s,
      body: { path: "block/ads.txt", text: "mine.example\n", version: got.body.version },
    });
    assert.equal(put.status, 409);
    assert.equal(readFileSync(join(gh.rules, "block", "ads.txt"), "utf8"), "ads.example\nedited.on.server\n");
  });

  it("creates a new list file inside rules/", async () => {
    const put = await call(gh.base, "PUT", "/api/rules/file", {
      session: s,
      body: { path: "block/new/office.txt", text: "games.example\n", version: "" },
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(readFileSync(join(gh.rules, "block", "new", "office.txt"), "utf8"), "games.example\n");
  });
});

describe("allow or block a name from the logs", () => {
  let gh: TestAdmin;
  let origin: Origin;
  let s: Session;
  before(async () => {
    origin = await startOrigin((_req, res) => res.end("content\n"));
    gh = await startAdmin({ files: { hosts: "127.0.0.1 ads.example news.example\n", "block/ads.txt": "ads.example\n" } });
    s = await loopbackSession(gh.base);
  });
  after(async () => {
    await gh.close();
    await origin.close();
  });

  it("allows a blocked name: allow/dashboard.txt gets it and the next request passes", async () => {
    const url = `http://ads.example:${origin.port}/`;
    assert.equal((await viaProxy(gh.proxyPort, url)).status, 403);
    const r = await call<{ file: string; line: number; explanation: Explanation }>(gh.base, "POST", "/api/decide", {
      session: s,
      body: { name: "ads.example", action: "allow", target: url, client: "127.0.0.1" },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.file, "allow/dashboard.txt");
    assert.equal(r.body.explanation.verdict, "ALLOW");
    assert.equal(r.body.explanation.decidedBy?.rule?.text, "ads.example");
    assert.match(readFileSync(join(gh.rules, "allow", "dashboard.txt"), "utf8"), /^ads\.example$/m);
    assert.equal((await viaProxy(gh.proxyPort, url)).status, 200);
  });

  it("blocks it again: the name leaves allow/dashboard.txt and goes to block/dashboard.txt", async () => {
    const url = `http://ads.example:${origin.port}/`;
    const r = await call<{ file: string; explanation: Explanation }>(gh.base, "POST", "/api/decide", {
      session: s,
      body: { name: "ads.example", action: "block", target: url },
    });
    assert.equal(r.body.file, "block/dashboard.txt");
    assert.equal(r.body.explanation.verdict, "BLOCK");
    assert.doesNotMatch(readFileSync(join(gh.rules, "allow", "dashboard.txt"), "utf8"), /^ads\.example$/m);
    assert.equal((await viaProxy(gh.proxyPort, url)).status, 403);
  });

  it("writes a name once however often it is clicked", async () => {
    for (let i = 0; i < 3; i++) {
      await call(gh.base, "POST", "/api/decide", { session: s, body: { name: "news.example", action: "block" } });
    }
    const lines = readFileSync(join(gh.rules, "block", "dashboard.txt"), "utf8").split("\n");
    assert.equal(lines.filter((l) => l === "news.example").length, 1);
  });
});

describe("remote lists in the admin", () => {
  it("refreshes a list on request and says why a download failed", async () => {
    let failing = true;
    const origin = await startOrigin((_req, res) => {
      if (failing) {
        res.writeHead(500);
        res.end("down");
        return;
      }
      res.end("listed.example\nother.listed.example\n");
    });
    const url = `${origin.url}/list.txt`;
    const gh = await startAdmin({ config: { lists: [{ url, refresh: "24h" }] } });
    try {
      const s = await loopbackSession(gh.base);
      const failed = await call<{ updated: boolean; status: string }>(gh.base, "POST", "/api/lists/refresh", {
        session: s,
        body: { url },
      });
      assert.equal(failed.body.updated, false);
      assert.match(failed.body.status, /^failed .*HTTP 500; the last good copy stays in force$/);
      failing = false;
      const ok = await call<{ updated: boolean }>(gh.base, "POST", "/api/lists/refresh", { session: s, body: { url } });
      assert.equal(ok.body.updated, true);
      const rules = await call<{ remote: { url: string; entries: number; lastFetch: number; status: string }[] }>(
        gh.base,
        "GET",
        "/api/rules",
      );
      const list = rules.body.remote[0];
      assert.equal(list?.url, url);
      assert.equal(list?.entries, 2);
      assert.ok((list?.lastFetch ?? 0) > 0);
      assert.match(list?.status ?? "", /^updated /);
      const unknown = await call(gh.base, "POST", "/api/lists/refresh", {
        session: s,
        body: { url: "http://127.0.0.1:9/other" },
      });
      assert.equal(unknown.status, 404);
    } finally {
      await gh.close();
      await origin.close();
    }
  });
});
