import assert from "node:assert/strict";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import { DomainList } from "../../src/rules/domain-list.js";
import { runGatehouse } from "../helpers/cli.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { eventually, rawExchange, startProxy, type TestProxy, viaProxy } from "../helpers/proxy.js";
import { rulesDir, writeRule } from "../helpers/rules.js";

// Origins listen on 127.0.0.1; rules name them through *.localhost-style names that a test maps
// with the Host it asks for, so a test needs no DNS: the proxy's rules see the URL's host.
const blockedOf = (p: TestProxy, host: string) => p.app.rules.current.checkDomain(host).blocked;

describe("rules in the proxy", () => {
  let origin: Origin;
  let proxy: TestProxy;
  let dir: string;
  before(async () => {
    origin = await startOrigin((_q, s) => s.end("content"));
    dir = rulesDir({
      "block/ads.txt": "ads.example\n||127.0.0.2^\n",
      "allow/ok.txt": "ok.ads.example\n",
      "firewall.rules": `deny port ${65000}\n`,
    });
    proxy = await startProxy({ rules: dir, listsDir: join(dir, "lists"), proxy: { connectPorts: [443, origin.port] } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  it("answers a blocked http:// request with an HTML block page naming the rule", async () => {
    const r = await viaProxy(proxy.port, `http://127.0.0.2:${origin.port}/page`, { headers: { accept: "text/html" } });
    assert.equal(r.status, 403);
    assert.match(String(r.headers["content-type"]), /text\/html/);
    const body = r.body.toString();
    assert.match(body, /<h1>Blocked<\/h1>/);
    assert.match(body, /block\/ads\.txt:2/);
    assert.match(body, /Ask your IT administrator/);
    assert.equal(origin.requests.length, 0);
  });

  it("answers a client that does not want HTML with plain text", async () => {
    const r = await viaProxy(proxy.port, `http://127.0.0.2:${origin.port}/page`);
    assert.equal(r.status, 403);
    assert.match(String(r.headers["content-type"]), /text\/plain/);
    assert.match(r.body.toString(), /^Blocked\n\n127\.0\.0\.2 is blocked by the office's blocklist\./);
  });

  it("refuses a blocked CONNECT with 403 and the reason", async () => {
    const text = await rawExchange(proxy.port, `CONNECT 127.0.0.2:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 403 Forbidden[\s\S]*block\/ads\.txt:2/);
  });

  it("applies a firewall deny rule", async () => {
    const text = await rawExchange(proxy.port, `GET http://127.0.0.1:65000/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 403 Forbidden[\s\S]*firewall\.rules:1/);
  });

  it("writes the deciding rule into the access log", async () => {
    await viaProxy(proxy.port, `http://127.0.0.2:${origin.port}/logged`);
    await eventually(
      () => proxy.accessLines.some((l) => l.includes("/logged") && / TCP_DENIED\/403 .* rule=.*block\/ads\.txt:2\n$/.test(l)),
      2000,
      "log line with rule",
    );
  });

  it("lets an unlisted host through", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/free`);
    assert.equal(r.body.toString(), "content");
  });
});

describe("rules reload without a restart", () => {
  let proxy: TestProxy;
  let dir: string;
  before(async () => {
    dir = rulesDir({ "block/list.txt": "one.example\n" });
    proxy = await startProxy({ rules: dir, listsDir: join(dir, "lists") });
  });
  after(() => proxy.close());

  it("applies an edit written in place", async () => {
    writeFileSync(join(dir, "block/list.txt"), "one.example\ntwo.example\n");
    await eventually(() => blockedOf(proxy, "two.example"), 3000, "two.example blocked");
  });

  it("applies a save by rename, as editors do", async () => {
    writeFileSync(join(dir, "block/.list.txt.tmp"), "three.example\n");
    renameSync(join(dir, "block/.list.txt.tmp"), join(dir, "block/list.txt"));
    await eventually(() => blockedOf(proxy, "three.example") && !blockedOf(proxy, "one.example"), 3000, "renamed file applied");
  });

  it("applies a new file and a deleted one", async () => {
    writeRule(dir, "block/extra.txt", "four.example\n");
    await eventually(() => blockedOf(proxy, "four.example"), 3000, "new file applied");
    rmSync(join(dir, "block/extra.txt"));
    await eventually(() => !blockedOf(proxy, "four.example"), 3000, "deleted file dropped");
  });

  it("compiles a big list off the main thread and applies it", async () => {
    const names = Array.from({ length: 400_000 }, (_, i) => `big${i}.list.example`);
    const text = `${names.join("\n")}\n`;
    // What compiling this list costs the thread that does it, measured here, on this machine.
    const t0 = performance.now();
    DomainList.compile("measure", "block", text);
    const inline = performance.now() - t0;
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    writeRule(dir, "block/big.txt", text);
    await eventually(
      () => blockedOf(proxy, "big399999.list.example") && blockedOf(proxy, "x.big7.list.example"),
      15_000,
      "big list applied",
    );
    delay.disable();
    const worst = delay.max / 1e6;
    assert.ok(
      worst < inline / 2,
      `the event loop stalled ${worst.toFixed(0)} ms; compiling inline takes ${inline.toFixed(0)} ms`,
    );
    rmSync(join(dir, "block/big.txt"));
    await eventually(() => !blockedOf(proxy, "big7.list.example"), 3000, "big list dropped");
  });

  it("keeps the last good version of a file that now has an error", async () => {
    writeFileSync(join(dir, "block/list.txt"), "five.example\n");
    await eventually(() => blockedOf(proxy, "five.example"), 3000, "five applied");
    writeFileSync(join(dir, "block/list.txt"), "six.example\nnot a domain\n");
    await eventually(() => proxy.app.rules.diagnostics().some((d) => d.line === 2), 3000, "error reported");
    assert.equal(blockedOf(proxy, "five.example"), true);
    assert.equal(blockedOf(proxy, "six.example"), false);
    writeFileSync(join(dir, "block/list.txt"), "six.example\n");
    await eventually(() => blockedOf(proxy, "six.example") && !blockedOf(proxy, "five.example"), 3000, "fixed file applied");
  });
});

describe("gatehouse explain and check with rules", () => {
  const dir = rulesDir({
    "block/ads.txt": "# ads\ntracker.example\n",
    "allow/fix.txt": "good.tracker.example\n",
    "firewall.rules": "group staff 10.1.0.0/16\nblock to social.example from staff\n",
  });
  const config = join(dir, "gatehouse.yaml");
  writeFileSync(config, `rules: ${dir}\nlistsDir: ${join(dir, "lists")}\n`);

  it("names the allow that won and the block that lost", async () => {
    const r = await runGatehouse(["explain", "good.tracker.example", "-c", config]);
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      [
        "good.tracker.example: ALLOW",
        '  client: not given (rules with "from" were skipped; add --client IP)',
        `  decided by an allow entry: ${dir}/allow/fix.txt:1: good.tracker.example`,
        "  also matched, but did not decide:",
        `    block: ${dir}/block/ads.txt:2: tracker.example`,
        "",
      ].join("\n"),
    );
  });

  it("applies firewall rules for the client given", async () => {
    const r = await runGatehouse(["explain", "http://social.example/feed", "--client", "10.1.2.3", "-c", config]);
    assert.match(
      r.stdout,
      /^http:\/\/social\.example\/feed: BLOCK\n {2}client: 10\.1\.2\.3\n {2}decided by the firewall: .*firewall\.rules:2: block to social\.example from staff\n$/,
    );
  });

  it("check prints every rules problem as file:line: reason and exits 1", async () => {
    const bad = rulesDir({ "block/x.txt": "ok.example\nnot valid\n", "firewall.rules": "allow from nowhere\n" });
    writeFileSync(join(bad, "gatehouse.yaml"), `rules: ${bad}\nlistsDir: ${join(bad, "lists")}\n`);
    const r = await runGatehouse(["check", "-c", join(bad, "gatehouse.yaml")]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^${bad}/block/x\\.txt:2: "not valid" has spaces`, "m"));
    assert.match(r.stdout, new RegExp(`^${bad}/firewall\\.rules:1: no group named "nowhere"`, "m"));
  });
});

describe("remote lists", () => {
  it("downloads a list, uses it, and keeps the last good copy when the next download fails", async () => {
    let body = "remote-one.example\n";
    let status = 200;
    const server = await startOrigin((_q, s) => {
      s.statusCode = status;
      s.end(body);
    });
    const dir = rulesDir({});
    const proxy = await startProxy({
      rules: dir,
      listsDir: join(dir, "lists"),
      lists: [{ url: `${server.url}/list.txt`, type: "block", refresh: "200ms" }],
    });
    try {
      await eventually(() => blockedOf(proxy, "remote-one.example"), 15_000, "remote list applied");
      status = 500;
      body = "oops";
      const before = server.requests.length;
      await eventually(() => server.requests.length > before + 1, 15_000, "refetched");
      assert.equal(blockedOf(proxy, "remote-one.example"), true);
      status = 200;
      body = "<html><body>Not a list</body></html>\n";
      const again = server.requests.length;
      await eventually(() => server.requests.length > again + 1, 15_000, "refetched");
      assert.equal(blockedOf(proxy, "remote-one.example"), true);
      body = "remote-two.example\n";
      await eventually(
        () => blockedOf(proxy, "remote-two.example") && !blockedOf(proxy, "remote-one.example"),
        15_000,
        "new list applied",
      );
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});

describe("explain says what the serving process does", () => {
  const dir = rulesDir({
    "block/ads.txt": "office.test\nads.example\n",
    hosts: "10.0.0.5 intranet.office.test\n",
  });
  let proxy: TestProxy;
  before(async () => {
    proxy = await startProxy({ rules: dir, listsDir: join(dir, "lists"), proxy: { clients: ["10.0.0.0/8", "127.0.0.0/8"] } });
  });
  after(() => proxy.close());

  it("denies a client outside proxy.clients, as the proxy does", async () => {
    const e = await proxy.app.explain("http://free.example/", "203.0.113.5");
    assert.equal(e.verdict, "DENY");
    assert.equal(e.decidedBy?.stage, "access");
    const served = await viaProxy(proxy.port, "http://ads.example/");
    assert.equal(served.status, 403);
  });

  it("answers an office name from its local record although a list blocks its domain", async () => {
    const e = await proxy.app.explain("intranet.office.test", "10.1.2.3");
    assert.equal(e.verdict, "LOCAL");
    assert.equal(e.decidedBy?.rule?.line, 1);
    assert.match(e.decidedBy?.rule?.file ?? "", /hosts$/);
  });

  it("blocks the rest of the listed domain", async () => {
    const e = await proxy.app.explain("www.office.test", "10.1.2.3");
    assert.equal(e.verdict, "BLOCK");
    assert.match(`${e.decidedBy?.rule?.file}:${e.decidedBy?.rule?.line}`, /block\/ads\.txt:1$/);
  });
});
