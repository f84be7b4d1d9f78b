import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import pino from "pino";
import type { Diagnostic } from "../../src/config/diagnostic.js";
import type { Logger } from "../../src/log/logger.js";
import { type FileKind, RulesStore } from "../../src/rules/store.js";
import { startOrigin } from "../helpers/origin.js";
import { eventually, startProxy, viaProxy } from "../helpers/proxy.js";

// Work nobody waits for (a refresh, a disk write, a compile) fails without taking the process
// with it: its owner logs the failure, and the next request is answered.

function captured(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "info", base: undefined }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

describe("background work that fails", () => {
  it("logs a stale-while-revalidate refresh that fails and keeps serving", async () => {
    let n = 0;
    const origin = await startOrigin((req, res) => {
      n++;
      if (n > 1) return req.socket.destroy();
      res.writeHead(200, { "cache-control": "max-age=0, stale-while-revalidate=600", etag: '"v1"' });
      res.end("first");
    });
    const { log, lines } = captured();
    const proxy = await startProxy({}, log);
    try {
      await viaProxy(proxy.port, `${origin.url}/swr`);
      const stale = await viaProxy(proxy.port, `${origin.url}/swr`);
      assert.equal(stale.body.toString(), "first");
      await eventually(() => lines.some((l) => /cache: refresh .*\/swr failed/.test(l.msg)), 5000, "refresh failure logged");
      assert.equal((await viaProxy(proxy.port, `${origin.url}/swr`)).body.toString(), "first");
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  it("turns the disk tier off with one warning when writing fails, and keeps serving from memory", async () => {
    const origin = await startOrigin((_q, res) => {
      res.writeHead(200, { "cache-control": "max-age=600" });
      res.end("cached");
    });
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-disk-"));
    const { log, lines } = captured();
    const proxy = await startProxy({ proxy: { cache: { disk: "10MiB", dir } } }, log);
    try {
      // The directory becomes a file: every write under it fails (ENOTDIR), as a failing disk would.
      rmSync(dir, { recursive: true });
      writeFileSync(dir, "");
      await viaProxy(proxy.port, `${origin.url}/a`);
      await eventually(() => lines.some((l) => /disk cache turned off/.test(l.msg)), 5000, "warning");
      assert.equal((await viaProxy(proxy.port, `${origin.url}/a`)).body.toString(), "cached");
      assert.equal(origin.requests.length, 1, "the memory tier answered");
    } finally {
      await proxy.close();
      await origin.close();
      rmSync(dir, { force: true });
    }
  });

  it("logs a compile that fails off the main thread and keeps the last good version", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-store-"));
    const kind: FileKind<string> = {
      name: "test",
      matches: (rel) => rel.endsWith(".txt"),
      compile: (_file, text) => ({ value: text.slice(0, 10), diagnostics: [] as Diagnostic[] }),
      compileOffThread: () => Promise.reject(new Error("the worker died")),
    };
    writeFileSync(join(dir, "list.txt"), "small one\n");
    const { log, lines } = captured();
    const store = new RulesStore([{ dir, kinds: [kind] }], log);
    store.scan();
    store.watch(50, () => {});
    try {
      writeFileSync(join(dir, "list.txt"), "x".repeat(3 * 1024 * 1024));
      await eventually(() => lines.some((l) => /rules: compile .*list\.txt failed: the worker died/.test(l.msg)), 5000, "logged");
      assert.deepEqual(store.values(kind), ["small one\n"]);
    } finally {
      await store.close();
    }
  });
});
