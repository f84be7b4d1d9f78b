import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGatehouse, spawnGatehouse } from "../helpers/cli.js";
import { startOrigin } from "../helpers/origin.js";
import { viaProxy } from "../helpers/proxy.js";

function tempConfig(yaml: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-cli-"));
  const file = join(dir, "gatehouse.yaml");
  writeFileSync(file, yaml);
  return { dir, file };
}

const QUIET = 'log:\n  access:\n    file: ""\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:0"\n';

describe("gatehouse command", () => {
  it("prints its version", async () => {
    const r = await runGatehouse(["--version"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it("prints usage for --help", async () => {
    const r = await runGatehouse(["--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /gatehouse start \[-c FILE\]/);
  });

  it("check passes on a good config", async () => {
    const { dir, file } = tempConfig(QUIET);
    const r = await runGatehouse(["check", "-c", file], dir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("check lists every problem with file:line and exits 1", async () => {
    const { file } = tempConfig("proxy:\n  cache:\n    memory: lots\n  bogus: 1\n");
    const r = await runGatehouse(["check", "-c", file]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`${file.replace(/[.]/g, "\\.")}:3: proxy\\.cache\\.memory: expected a size like 256MiB`));
    assert.match(r.stdout, /:4: proxy\.bogus: unknown key/);
  });

  it("start refuses a bad config with every error and exit 1", async () => {
    const { file } = tempConfig('proxy:\n  listen: ["nonsense"]\n  limits:\n    idleTimeout: never\n');
    const run = spawnGatehouse(["-c", file]);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /:2: proxy\.listen\[0\]/);
    assert.match(run.stderr(), /:4: proxy\.limits\.idleTimeout/);
  });

  it("start exits 1 with a clear message when the config file is missing", async () => {
    const run = spawnGatehouse(["-c", "/nonexistent/gatehouse.yaml"]);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /cannot read the config file \(ENOENT\)/);
  });

  it("SIGHUP with a bad config keeps the old one serving; a good one is applied", async () => {
    const origin = await startOrigin((_q, s) => s.end("up"));
    const { dir, file } = tempConfig(`${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n`);
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      writeFileSync(file, `${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n  limits:\n    idleTimeout: never\n`);
      run.child.kill("SIGHUP");
      await run.waitFor(/reload failed; the previous configuration stays in force/);
      assert.match(run.stderr(), /gatehouse\.yaml:11: proxy\.limits\.idleTimeout: expected a duration/);
      assert.equal((await viaProxy(port, `${origin.url}/`)).body.toString(), "up");

      writeFileSync(file, `${QUIET}proxy:\n  listen: ["127.0.0.1:${port}"]\n  clients: ["10.0.0.0/8"]\n`);
      run.child.kill("SIGHUP");
      await run.waitFor(/configuration reloaded/);
      assert.equal((await viaProxy(port, `${origin.url}/`)).status, 403);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });

  it("SIGTERM lets an open request finish, then exits 0", async () => {
    let release: () => void = () => {};
    const origin = await startOrigin((_q, s) => {
      s.write("part one, ");
      release = () => s.end("part two");
    });
    const { dir, file } = tempConfig(`${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n`);
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      const pending = viaProxy(port, `${origin.url}/slow`);
      while (origin.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
      run.child.kill("SIGTERM");
      setTimeout(() => release(), 200);
      const r = await pending;
      assert.equal(r.body.toString(), "part one, part two");
      assert.equal(await run.exited, 0);
    } finally {
      run.child.kill("SIGKILL");
      await origin.close();
    }
  });
});

describe("gatehouse cache", () => {
  it("prints the running proxy's cache stats and purges a URL", async () => {
    const { createServer } = await import("node:net");
    const free = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const origin = await startOrigin((_q, s) => {
      s.writeHead(200, { "cache-control": "max-age=600" });
      s.end("cacheable");
    });
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: ""\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:${free}"\nproxy:\n  listen: ["127.0.0.1:0"]\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/"proxy":\["127\.0\.0\.1:(\d+)"/.exec(started)?.[1]);
      await viaProxy(port, `${origin.url}/page`);
      await viaProxy(port, `${origin.url}/page`);
      const stats = await runGatehouse(["cache", "stats", "-c", file], dir);
      assert.equal(stats.code, 0, stats.stderr);
      assert.match(stats.stdout, /^memory: 1 entries, /m);
      assert.match(stats.stdout, /hits: 1, misses: 1, hit ratio: 50\.0%/);
      const purge = await runGatehouse(["cache", "purge", `${origin.url}/page`, "-c", file], dir);
      assert.match(purge.stdout, /purged 1 stored response$/m);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });

  it("says so when no gatehouse is running", async () => {
    const { dir, file } = tempConfig('admin:\n  listen: "127.0.0.1:9"\n');
    const r = await runGatehouse(["cache", "stats", "-c", file], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no gatehouse answers on http:\/\/127\.0\.0\.1:9/);
  });
});
