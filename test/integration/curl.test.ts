import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type Origin, readBody, startOrigin } from "../helpers/origin.js";
import { startProxy, type TestProxy } from "../helpers/proxy.js";

const run = promisify(execFile);
const curl = (args: string[]) =>
  run("curl", ["-sS", "--max-time", "10", ...args], { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 });

describe("curl through the proxy", () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin(async (req, res) => {
      if (req.method === "POST" || req.method === "PUT") {
        const body = await readBody(req);
        res.end(createHash("sha256").update(body).digest("hex"));
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`you asked for ${req.url}`);
    });
    proxy = await startProxy({ proxy: { connectPorts: [443, origin.port] } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  it("fetches a page with -x", async () => {
    const { stdout } = await curl(["-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/page`]);
    assert.equal(stdout.toString(), "you asked for /page");
  });

  it("fetches through a CONNECT tunnel with --proxytunnel", async () => {
    const { stdout } = await curl(["-p", "-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/tunnelled`]);
    assert.equal(stdout.toString(), "you asked for /tunnelled");
  });

  it("uploads a chunked body intact", async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, "z");
    const { stdout } = await new Promise<{ stdout: Buffer }>((resolve, reject) => {
      const child = execFile(
        "curl",
        [
          "-sS",
          "-x",
          `http://127.0.0.1:${proxy.port}`,
          "-H",
          "Transfer-Encoding: chunked",
          "--data-binary",
          "@-",
          `${origin.url}/up`,
        ],
        { encoding: "buffer" },
        (err, out) => (err ? reject(err) : resolve({ stdout: out })),
      );
      child.stdin?.end(body);
    });
    assert.equal(stdout.toString(), createHash("sha256").update(body).digest("hex"));
  });

  it("shows curl the 502 page when the origin is down", async () => {
    const { stdout } = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-w", "\n%{http_code}", "http://127.0.0.1:1/"]);
    assert.match(stdout.toString(), /refused the connection[\s\S]*\n502$/);
  });
});
