import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startOrigin } from "../helpers/origin.js";
import { startProxy, viaProxy } from "../helpers/proxy.js";

function entryFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((sub) =>
    readdirSync(join(dir, sub))
      .filter((f) => f.endsWith(".entry"))
      .map((f) => join(dir, sub, f)),
  );
}

describe("disk cache tier", () => {
  it("serves a stored response after a restart without asking the origin", async () => {
    let n = 0;
    const origin = await startOrigin((_q, res) => {
      n++;
      res.writeHead(200, { "cache-control": "max-age=600" });
      res.end(`persisted ${n}`);
    });
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-disk-"));
    const cfg = { proxy: { cache: { disk: "10MiB", dir } } };
    const first = await startProxy(cfg);
    await viaProxy(first.port, `${origin.url}/keep`);
    const deadline = Date.now() + 2000;
    while (entryFiles(dir).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await first.close();
    const second = await startProxy(cfg);
    try {
      const r = await viaProxy(second.port, `${origin.url}/keep`);
      assert.equal(r.body.toString(), "persisted 1");
      assert.equal(n, 1);
      assert.match(String(r.headers["cache-status"]), /hit/);
    } finally {
      await second.close();
      await origin.close();
    }
  });

  it("purges by prefix the entries a previous run left on disk, and only those under the prefix", async () => {
    let n = 0;
    const origin = await startOrigin((_q, res) => {
      n++;
      res.writeHead(200, { "cache-control": "max-age=600" });
      res.end(`copy ${n}`);
    });
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-disk-"));
    const cfg = { proxy: { cache: { disk: "10MiB", dir } } };
    const first = await startProxy(cfg);
    for (const path of ["/docs/a", "/docs/b", "/other"]) await viaProxy(first.port, `${origin.url}${path}`);
    const deadline = Date.now() + 2000;
    while (entryFiles(dir).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await first.close();
    const second = await startProxy(cfg);
    try {
      assert.deepEqual(second.app.cache.purgePrefix(`${origin.url}/docs/`), { urls: 2, purged: 2 });
      const kept = await viaProxy(second.port, `${origin.url}/other`);
      assert.match(String(kept.headers["cache-status"]), /hit/);
      const purged = await viaProxy(second.port, `${origin.url}/docs/a`);
      assert.match(String(purged.headers["cache-status"]), /fwd=uri-miss/);
      assert.equal(n, 4);
    } finally {
      await second.close();
      await origin.close();
    }
  });

  for (const [name, damage] of [
    ["truncated", (buf: Buffer) => buf.subarray(0, buf.length - 3)],
    ["corrupt", (buf: Buffer) => Buffer.concat([buf.subarray(0, buf.length - 1), Buffer.from("X")])],
  ] as const) {
    it(`drops a ${name} entry and refetches instead of serving it`, async () => {
      let n = 0;
      const origin = await startOrigin((_q, res) => {
        n++;
        res.writeHead(200, { "cache-control": "max-age=600" });
        res.end(`fresh copy ${n}`);
      });
      const dir = mkdtempSync(join(tmpdir(), "gatehouse-disk-"));
      const cfg = { proxy: { cache: { disk: "10MiB", dir } } };
      const first = await startProxy(cfg);
      await viaProxy(first.port, `${origin.url}/damaged`);
      const deadline = Date.now() + 2000;
      while (entryFiles(dir).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await first.close();
      const [file] = entryFiles(dir);
      writeFileSync(file as string, damage(readFileSync(file as string)));
      const second = await startProxy(cfg);
      try {
        const r = await viaProxy(second.port, `${origin.url}/damaged`);
        assert.equal(r.body.toString(), "fresh copy 2");
        assert.equal(n, 2);
      } finally {
        await second.close();
        await origin.close();
      }
    });
  }
});
