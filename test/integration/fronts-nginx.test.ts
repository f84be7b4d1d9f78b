import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../helpers/ports.js";
import { eventually, startProxy, type TestProxy } from "../helpers/proxy.js";

// End to end with a server nobody here wrote: Debian's nginx behind a front, taking the client's
// address from the PROXY protocol (v2) the way an office web server would be set up for it.

/** Waits until something accepts connections on the port. */
async function listening(port: number, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

describe("a front before nginx", () => {
  let nginx: ChildProcess;
  let proxy: TestProxy;
  let port: number;
  before(async () => {
    execFileSync("nginx", ["-v"]);
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-nginx-"));
    chmodSync(dir, 0o755);
    const backend = await freePort();
    writeFileSync(
      join(dir, "nginx.conf"),
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${backend} proxy_protocol;
    location / {
      add_header X-Client-Address $proxy_protocol_addr always;
      add_header X-Seen-Forwarded-For $http_x_forwarded_for always;
      return 200 "nginx served $host$uri\\n";
    }
  }
}
`,
    );
    nginx = spawn("nginx", ["-c", join(dir, "nginx.conf")], { stdio: "ignore" });
    await listening(backend);
    port = await freePort();
    proxy = await startProxy({
      fronts: [
        {
          name: "web",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["www.office.test"],
          backend: [{ url: `http://127.0.0.1:${backend}`, clientAddress: "proxy-v2" }],
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    nginx.kill("SIGTERM");
  });

  it("serves nginx's page, and nginx sees the real client through PROXY v2", async () => {
    const r = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const q = request(
        { host: "127.0.0.1", port, path: "/hello", headers: { host: "www.office.test" }, agent: false },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => {
            body += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      q.on("error", reject);
      q.end();
    });
    assert.equal(r.status, 200);
    assert.equal(r.body, "nginx served www.office.test/hello\n");
    assert.equal(r.headers["x-client-address"], "127.0.0.1");
    assert.equal(r.headers["x-seen-forwarded-for"], "127.0.0.1");
  });

  it("checks nginx's health with a PROXY header too (nginx refuses connections without one)", async () => {
    await eventually(() => (proxy.app.frontHealth[0]?.backends[0]?.checked ?? 0) >= 1, 5000, "a health check done");
    const status = proxy.app.frontHealth[0]?.backends[0];
    assert.equal(status?.up, true);
    assert.equal(status?.lastError, undefined);
  });
});
