import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Gatehouse } from "../../src/app.js";
import { QueryLog } from "../../src/dns/query-log.js";
import { AccessLog } from "../../src/log/access-log.js";
import { silentLogger } from "../../src/log/logger.js";
import { dig } from "../helpers/dns.js";
import { startContentServer } from "../helpers/dns-server.js";
import { startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, viaProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";

/** Open file descriptors of this process: sockets, watchers, files. A leak shows here. */
const openFds = () => readdirSync("/proc/self/fd").length;

async function startFromFile(yaml: string, dir = mkdtempSync(join(tmpdir(), "gatehouse-life-"))) {
  const file = join(dir, "gatehouse.yaml");
  writeFileSync(file, yaml);
  const app = await Gatehouse.start({
    configFile: file,
    log: silentLogger(),
    accessLog: AccessLog.toFunction(() => {}, "squid"),
    queryLog: QueryLog.toFunction(() => {}),
  });
  return { app, file, dir, write: (y: string) => writeFileSync(file, y) };
}

describe("reload", () => {
  it("leaves the same sockets, listeners and rule subscribers after 20 reloads", async () => {
    const content = await startContentServer({ "www.example.test": [{ type: "A", value: "192.0.2.1" }] });
    const origin = await startOrigin((_q, s) => s.end("up"));
    const rules = rulesDir({ "block/ads.txt": "ads.example\n" });
    const base = (cacheSize: string, name: string) =>
      `rules: ${rules}\nlistsDir: ${rules}/lists\nproxy:\n  listen: ["127.0.0.1:0"]\n  name: ${name}\n  cache:\n    memory: ${cacheSize}\ndns:\n  listen: ["127.0.0.1:0"]\n  upstreams: ["${content.label}"]\n  cache:\n    maxTtl: ${cacheSize === "8MiB" ? "1h" : "2h"}\nadmin:\n  listen: "127.0.0.1:0"\n`;
    const g = await startFromFile(base("8MiB", "gh-a"));
    try {
      const proxyPort = g.app.proxyAddresses[0]?.port as number;
      const dnsPort = g.app.dnsAddresses[0]?.port as number;
      const use = async () => {
        assert.equal((await viaProxy(proxyPort, `${origin.url}/`)).body.toString(), "up");
        assert.equal((await dig(dnsPort, ["www.example.test"])).status, "NOERROR");
      };
      await use();
      // One reload first, so lazily opened things (upstream sockets, pools) exist on both sides.
      g.write(base("16MiB", "gh-b"));
      assert.equal(await g.app.reload(), true);
      await use();
      const before = { fds: openFds(), ...g.app.counts };
      for (let i = 0; i < 20; i++) {
        g.write(base(i % 2 === 0 ? "8MiB" : "16MiB", i % 2 === 0 ? "gh-a" : "gh-b"));
        assert.equal(await g.app.reload(), true, `reload ${i}`);
        await use();
      }
      g.write(base("16MiB", "gh-b"));
      assert.equal(await g.app.reload(), true);
      await use();
      // Retired upstream pools close their idle connections in the background.
      await eventually(() => openFds() <= before.fds, 5000, `open descriptors back to ${before.fds} (now ${openFds()})`);
      assert.deepEqual(
        { ...g.app.counts },
        { proxyListeners: before.proxyListeners, dnsListeners: before.dnsListeners, ruleSubscribers: before.ruleSubscribers },
      );
      assert.equal(g.app.proxyAddresses[0]?.port, proxyPort, "the listener kept its socket");
      assert.equal(g.app.dnsAddresses[0]?.port, dnsPort, "the DNS listener kept its socket");
    } finally {
      await g.app.stop();
      await origin.close();
      await content.close();
    }
  });

  it("a reload that cannot bind a new address changes nothing and says why", async () => {
    const origin = await startOrigin((_q, s) => s.end("up"));
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const busyPort = (busy.address() as { port: number }).port;
    const port = await freePort();
    const rules = rulesDir({});
    const yaml = (listen: string) =>
      `rules: ${rules}\nlistsDir: ${rules}/lists\nproxy:\n  listen: [${listen}]\n  clients: ["127.0.0.0/8"]\ndns:\n  listen: []\n  upstreams: ["127.0.0.1:9"]\nadmin:\n  listen: ""\n`;
    const g = await startFromFile(yaml(`"127.0.0.1:${port}"`));
    try {
      const fds = openFds();
      g.write(yaml(`"127.0.0.1:${port}", "127.0.0.1:${busyPort}"`).replace('["127.0.0.0/8"]', '["10.0.0.0/8"]'));
      assert.equal(await g.app.reload(), false);
      assert.equal(openFds(), fds, "nothing new left open");
      assert.deepEqual(
        g.app.proxyAddresses.map((a) => a.port),
        [port],
      );
      // The old proxy.clients still applies: the failed config was not half applied.
      assert.equal((await viaProxy(port, `${origin.url}/`)).body.toString(), "up");
    } finally {
      await g.app.stop();
      await origin.close();
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });

  it("adds a second dns.listen address on reload and keeps the first one's socket", async () => {
    const content = await startContentServer({ "www.example.test": [{ type: "A", value: "192.0.2.1" }] });
    const [p1, p2] = [await freePort(), await freePort()];
    const rules = rulesDir({});
    const yaml = (listen: string) =>
      `rules: ${rules}\nlistsDir: ${rules}/lists\nproxy:\n  listen: []\ndns:\n  listen: [${listen}]\n  upstreams: ["${content.label}"]\nadmin:\n  listen: ""\n`;
    const g = await startFromFile(yaml(`"127.0.0.1:${p1}"`));
    try {
      g.write(yaml(`"127.0.0.1:${p1}", "127.0.0.1:${p2}"`));
      assert.equal(await g.app.reload(), true);
      for (const port of [p1, p2]) assert.equal((await dig(port, ["www.example.test"])).status, "NOERROR");
    } finally {
      await g.app.stop();
      await content.close();
    }
  });

  it("moves the admin listener and reopens the access log file when they change", async () => {
    const origin = await startOrigin((_q, s) => s.end("up"));
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-life-"));
    const rules = rulesDir({});
    const [a1, a2] = [await freePort(), await freePort()];
    const yaml = (admin: number, log: string) =>
      `rules: ${rules}\nlistsDir: ${rules}/lists\nlog:\n  access:\n    file: ${log}\nproxy:\n  listen: ["127.0.0.1:0"]\ndns:\n  listen: []\n  upstreams: ["127.0.0.1:9"]\nadmin:\n  listen: "127.0.0.1:${admin}"\n`;
    const file = join(dir, "gatehouse.yaml");
    writeFileSync(file, yaml(a1, "first.log"));
    const app = await Gatehouse.start({ configFile: file, log: silentLogger(), queryLog: QueryLog.toFunction(() => {}) });
    try {
      const port = app.proxyAddresses[0]?.port as number;
      assert.equal(app.adminAddress?.port, a1);
      writeFileSync(file, yaml(a2, "second.log"));
      assert.equal(await app.reload(), true);
      assert.equal(app.adminAddress?.port, a2);
      await viaProxy(port, `${origin.url}/after-reload`);
      await eventually(
        () => {
          try {
            return readFileSync(join(dir, "second.log"), "utf8").includes("/after-reload");
          } catch {
            return false;
          }
        },
        3000,
        "line in the new log file (relative to the config file's directory)",
      );
      assert.doesNotMatch(readFileSync(join(dir, "first.log"), "utf8"), /after-reload/);
      const old = await fetch(`http://127.0.0.1:${a1}/`).then(
        () => "answered",
        () => "refused",
      );
      assert.equal(old, "refused");
    } finally {
      await app.stop();
      await origin.close();
    }
  });
});
