import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { type IncomingMessage, request } from "node:http";
import { type AddressInfo, connect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { WebSocketServer, WebSocket as WsClient } from "ws";
import { OfficeCa } from "../../src/tls/ca.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, startProxy, type TestProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";
import { certsDir, issue, makeCa, type TestCa } from "../helpers/tls.js";

// Fronts for the office's own web servers, with real backends on loopback and real clients: node
// HTTP, curl (HTTP/1.1 and HTTP/2), a WebSocket client.

interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A plain HTTP request to a front, with the Host a browser would send. */
function get(port: number, host: string, path = "/", headers: Record<string, string> = {}, method = "GET"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port, path, method, headers: { host, ...headers }, agent: false }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => {
        body += c.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on("error", reject);
    r.end();
  });
}

function curl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile("curl", ["-s", "-S", "--max-time", "10", ...args], { encoding: "utf8" }, (err, out) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out }),
    ),
  );
}

/** A backend that says which one it is and what reached it. */
const echoing = (name: string) =>
  startOrigin((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        backend: name,
        url: req.url,
        host: req.headers.host,
        xff: req.headers["x-forwarded-for"],
        proto: req.headers["x-forwarded-proto"],
        xfhost: req.headers["x-forwarded-host"],
        forwarded: req.headers.forwarded,
      }),
    );
  });

describe("web fronts: routing and forwarding", () => {
  let intranet: Origin;
  let shop: Origin;
  let proxy: TestProxy;
  let port: number;
  before(async () => {
    intranet = await echoing("intranet");
    shop = await echoing("shop");
    port = await freePort();
    const rules = rulesDir({ "firewall.rules": "deny from 127.0.0.1 path /admin\n" });
    proxy = await startProxy({
      rules,
      listsDir: join(rules, "lists"),
      fronts: [
        { name: "intranet", protocol: "http", listen: [`127.0.0.1:${port}`], hosts: ["intranet.test"], backend: intranet.url },
        {
          name: "shop",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["shop.test", "*.shop.test"],
          backend: [shop.url],
          trustedProxies: ["127.0.0.2"],
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await Promise.all([intranet.close(), shop.close()]);
  });

  for (const [host, backend] of [
    ["intranet.test", "intranet"],
    ["shop.test", "shop"],
    ["www.shop.test", "shop"],
  ] as const) {
    it(`sends Host ${host} to the ${backend} backend, keeping the Host`, async () => {
      const r = await get(port, host, "/page?x=1");
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body) as { backend: string; url: string; host: string };
      assert.deepEqual([seen.backend, seen.url, seen.host], [backend, "/page?x=1", host]);
    });
  }

  it("answers a name no front serves with 421 and reaches no backend", async () => {
    const r = await get(port, "elsewhere.test");
    assert.equal(r.status, 421);
    assert.match(r.body, /serves no site named elsewhere\.test/);
    // Health checks reach the backends all the while: only a request for that name would be wrong.
    const leaked = [...intranet.requests, ...shop.requests].filter((q) => q.headers.host === "elsewhere.test");
    assert.deepEqual(leaked, []);
    // Visitors from the internet are not sent to the office's IT contact.
    assert.doesNotMatch(r.body, /administrator/);
    assert.match(r.body, /tell the site's owners; quote request id/);
  });

  it("answers a request without Host with 400", async () => {
    const text = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1", () => s.write("GET / HTTP/1.0\r\n\r\n"));
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString();
      });
      s.on("close", () => resolve(got));
    });
    assert.match(text, /^HTTP\/1\.1 400/);
  });

  it("sets X-Forwarded-For/-Proto/-Host and Forwarded from the connection, dropping what the client claimed", async () => {
    const r = await get(port, "intranet.test", "/", { "x-forwarded-for": "6.6.6.6", forwarded: "for=6.6.6.6" });
    const seen = JSON.parse(r.body) as Record<string, string>;
    assert.equal(seen.xff, "127.0.0.1");
    assert.equal(seen.proto, "http");
    assert.equal(seen.xfhost, "intranet.test");
    assert.equal(seen.forwarded, "for=127.0.0.1;host=intranet.test;proto=http");
  });

  it("keeps the forwarding fields of a trusted proxy and appends its address", async () => {
    const r = await new Promise<Reply>((resolve, reject) => {
      const q = request(
        {
          host: "127.0.0.1",
          port,
          localAddress: "127.0.0.2",
          headers: { host: "shop.test", "x-forwarded-for": "198.51.100.7" },
          agent: false,
        },
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
    assert.equal((JSON.parse(r.body) as Record<string, string>).xff, "198.51.100.7, 127.0.0.2");
  });

  it("applies the firewall to front clients by path", async () => {
    const r = await get(port, "intranet.test", "/admin/users");
    assert.equal(r.status, 403);
    assert.match(r.body, /firewall\.rules:1/);
  });

  it("refuses CONNECT on a front", async () => {
    const text = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1", () => s.write("CONNECT intranet.test:443 HTTP/1.1\r\nHost: intranet.test\r\n\r\n"));
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString();
      });
      s.on("close", () => resolve(got));
    });
    assert.match(text, /^HTTP\/1\.1 405/);
  });

  it("names the front and the backend in the access log", async () => {
    await get(port, "intranet.test", "/logged");
    await eventually(
      () =>
        proxy.accessLines.some(
          (l) => l.includes("GET http://intranet.test/logged") && l.includes(` FRONT_intranet/127.0.0.1:${intranet.port} `),
        ),
      2000,
      "front access line",
    );
  });
});

describe("web fronts: backends down and back", () => {
  it("fails over to a healthy backend, answers 503 when all are down, and recovers", async () => {
    const a = await echoing("a");
    const b = await echoing("b");
    const bPort = b.port;
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        {
          name: "site",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["site.test"],
          backend: [a.url, b.url],
          balance: "first",
          health: { interval: "100ms", timeout: "500ms", rise: 1, fall: 1 },
        },
      ],
    });
    try {
      assert.equal(JSON.parse((await get(port, "site.test")).body).backend, "a");
      await a.close();
      // The first request after a dies may still go to it and fail over at once.
      assert.equal(JSON.parse((await get(port, "site.test")).body).backend, "b");
      await b.close();
      await eventually(() => proxy.app.frontHealth[0]?.backends.every((s) => !s.up) === true, 5000, "both down");
      const down = await get(port, "site.test");
      assert.equal(down.status, 503);
      assert.ok(Number(down.headers["retry-after"]) >= 1);
      assert.match(down.body, /Every server behind site is down/);
      // The admin API and /metrics show it.
      const admin = `http://127.0.0.1:${proxy.app.adminAddress?.port}`;
      const status = (await (await fetch(`${admin}/api/status`)).json()) as {
        fronts: { front: string; backends: { up: boolean }[] }[];
      };
      assert.deepEqual(
        status.fronts.map((f) => [f.front, f.backends.map((b) => b.up)]),
        [["site", [false, false]]],
      );
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, new RegExp(`gatehouse_front_backend_up\\{front="site",backend="127\\.0\\.0\\.1:${bPort}"\\} 0`));
      // b comes back where it was.
      const revived = await startBackendOn(bPort, "b is back");
      await eventually(async () => (await get(port, "site.test")).body === "b is back", 5000, "recovered");
      await revived.close();
    } finally {
      await proxy.close();
    }
  });
});

describe("web fronts: what the internet is told", () => {
  it("tells an outside visitor the site is unavailable, and an office client which backend failed and why", async () => {
    const port = await freePort();
    const dead = await freePort();
    const proxy = await startProxy({
      // 127.0.0.1 is the office; 127.0.0.2 stands for a visitor from the internet.
      proxy: { clients: ["127.0.0.1/32"] },
      fronts: [
        {
          name: "site",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["site.test"],
          backend: `http://127.0.0.1:${dead}`,
          health: { enabled: false },
        },
      ],
    });
    const from = (localAddress: string) =>
      new Promise<Reply>((resolve, reject) => {
        const r = request(
          { host: "127.0.0.1", port, localAddress, path: "/", headers: { host: "site.test" }, agent: false },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c.toString();
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          },
        );
        r.on("error", reject);
        r.end();
      });
    try {
      const office = await from("127.0.0.1");
      assert.equal(office.status, 502);
      assert.match(office.body, new RegExp(`127\\.0\\.0\\.1:${dead}`));
      const outside = await from("127.0.0.2");
      assert.equal(outside.status, 502);
      assert.doesNotMatch(outside.body, /127\.0\.0\.1|ECONNREFUSED|refused/);
      assert.match(outside.body, /The site is not available right now/);
    } finally {
      await proxy.close();
    }
  });
});

describe("web fronts: clients that leave", () => {
  it("does not count a client that hangs up mid-request against the backend", async () => {
    const { createServer } = await import("node:http");
    let arrived = () => {};
    // Answers only once the client has gone: the front's fetch fails because of the client.
    const slow = createServer((req, res) => {
      if (req.url === "/slow") {
        arrived();
        setTimeout(() => res.end("late"), 200);
      } else res.end("fine");
    });
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        {
          name: "site",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["site.test"],
          backend: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`,
          health: { enabled: false, fall: 1 },
        },
      ],
    });
    try {
      for (let i = 0; i < 3; i++) {
        const client = connect(port, "127.0.0.1");
        client.on("error", () => {});
        // The request reaches the backend, unless the front has written the backend off and answers itself.
        const reached = new Promise<void>((resolve, reject) => {
          arrived = resolve;
          client.on("data", (d: Buffer) =>
            reject(new Error(`request ${i} answered by the front: ${d.toString().split("\r\n")[0]}`)),
          );
        });
        client.write("GET /slow HTTP/1.1\r\nHost: site.test\r\n\r\n");
        await reached;
        client.destroy();
      }
      await eventually(() => proxy.accessLines.filter((l) => l.includes("/slow")).length === 3, 5000, "three lines");
      assert.deepEqual(
        proxy.app.frontHealth[0]?.backends.map((b) => b.up),
        [true],
      );
      const r = await get(port, "site.test", "/after");
      assert.equal(r.status, 200);
      assert.equal(r.body, "fine");
    } finally {
      await proxy.close();
      slow.closeAllConnections();
      slow.close();
    }
  });
});

describe("web fronts: TLS clients out of the ordinary", () => {
  let ca: TestCa;
  let certs: string;
  let origin: Origin;
  let proxy: TestProxy;
  let port: number;
  before(async () => {
    ca = makeCa();
    certs = certsDir(ca);
    // An office CA exists: it could mint a certificate for any name, and must not for strangers.
    OfficeCa.create(certs, "test office CA");
    const pair = issue(ca, ["intranet.test"]);
    writeFileSync(join(certs, "intranet.crt"), pair.cert);
    writeFileSync(join(certs, "intranet.key"), pair.key, { mode: 0o600 });
    origin = await echoing("tls");
    port = await freePort();
    proxy = await startProxy({
      certs,
      proxy: { limits: { headerTimeout: "500ms" } },
      fronts: [
        {
          name: "intranet",
          protocol: "https",
          listen: [`127.0.0.1:${port}`],
          hosts: ["intranet.test"],
          backend: origin.url,
          tls: { cert: "intranet" },
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const handshake = (servername: string) =>
    new Promise<{ subject: string } | { error: string }>((resolve) => {
      const s = tlsConnect({ port, host: "127.0.0.1", servername, rejectUnauthorized: false }, () => {
        resolve({ subject: String(s.getPeerCertificate().subjectaltname) });
        s.destroy();
      });
      s.on("error", (err) => resolve({ error: err.message }));
    });

  it("gives a client that sends no SNI (an https://address/ URL) the default front's certificate", async () => {
    // node's tls.connect sends no SNI when servername is empty.
    const s = tlsConnect({ port, host: "127.0.0.1", servername: "", rejectUnauthorized: false });
    s.on("error", () => {});
    const secure = await new Promise<boolean>((resolve) => {
      s.once("secureConnect", () => resolve(true));
      s.once("close", () => resolve(false));
    });
    assert.ok(secure, "handshake refused");
    assert.match(String(s.getPeerCertificate().subjectaltname), /DNS:intranet\.test/);
    s.destroy();
  });

  it("mints no certificate for a name no front serves, though an office CA exists", async () => {
    const r = await handshake("stranger.example");
    assert.ok("error" in r, `handshake succeeded: ${JSON.stringify(r)}`);
  });

  it("answers 408 to an HTTP/1.1 client that sends its headers a line at a time past headerTimeout", async () => {
    const s = tlsConnect({
      port,
      host: "127.0.0.1",
      servername: "intranet.test",
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    s.on("error", () => {});
    await new Promise<void>((resolve) => s.once("secureConnect", () => resolve()));
    s.write("GET / HTTP/1.1\r\nHost: intranet.test\r\n");
    const trickle = setInterval(() => s.writable && s.write("X-Slow: yes\r\n"), 100);
    try {
      // Node's own default would answer after 60 s: well past this deadline for a 500 ms headerTimeout.
      const reply = await new Promise<string>((resolve) => {
        let got = "";
        s.on("data", (d: Buffer) => {
          got += d.toString();
        });
        s.once("close", () => resolve(got));
        setTimeout(() => resolve("still open after 10 s"), 10_000).unref();
      });
      s.destroy();
      assert.match(reply, /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(trickle);
    }
  });
});

/** An HTTP backend on a given port (a server that comes back where it was). */
async function startBackendOn(port: number, text: string): Promise<{ close(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const server = createServer((_q, s) => s.end(text));
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("web fronts: PROXY protocol, WebSocket, cache", () => {
  it("sends a PROXY v1 header with the client's address to a backend that wants it", async () => {
    const heads: string[] = [];
    const backend: Server = createTcpServer((s: Socket) => {
      let buf = "";
      s.on("data", (c: Buffer) => {
        buf += c.toString("latin1");
        if (!buf.includes("\r\n\r\n")) return;
        heads.push(buf.split("\r\n")[0] as string);
        s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
      });
    });
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    const bport = (backend.address() as AddressInfo).port;
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        {
          name: "pp",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["pp.test"],
          backend: [{ url: `http://127.0.0.1:${bport}`, clientAddress: "proxy-v1" }],
          health: { enabled: false },
        },
      ],
    });
    try {
      assert.equal((await get(port, "pp.test")).body, "ok");
      assert.match(heads[0] ?? "", new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${port}$`));
    } finally {
      await proxy.close();
      await new Promise<void>((r) => backend.close(() => r()));
    }
  });

  it("relays a WebSocket both ways", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    wss.on("connection", (ws, req) => ws.on("message", (m) => ws.send(`echo ${m} via ${req.headers["x-forwarded-for"]}`)));
    await new Promise((r) => wss.once("listening", r));
    const wport = (wss.address() as AddressInfo).port;
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        { name: "ws", protocol: "http", listen: [`127.0.0.1:${port}`], hosts: ["ws.test"], backend: `http://127.0.0.1:${wport}` },
      ],
    });
    try {
      const client = new WsClient(`ws://127.0.0.1:${port}/chat`, { headers: { host: "ws.test" } });
      await new Promise((r, j) => {
        client.once("open", r);
        client.once("error", j);
      });
      const reply = new Promise<string>((r) => client.once("message", (m) => r(String(m))));
      client.send("hello");
      assert.equal(await reply, "echo hello via 127.0.0.1");
      client.close();
    } finally {
      await proxy.close();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it("serves repeat requests from the front's cache, its Cache-Status naming the front", async () => {
    const origin = await startOrigin((_q, s) => {
      s.writeHead(200, { "cache-control": "max-age=60", "content-type": "text/plain" });
      s.end("cacheable");
    });
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        { name: "wiki", protocol: "http", listen: [`127.0.0.1:${port}`], hosts: ["wiki.test"], backend: origin.url, cache: true },
      ],
    });
    try {
      await get(port, "wiki.test", "/page");
      const second = await get(port, "wiki.test", "/page");
      assert.equal(second.body, "cacheable");
      assert.match(String(second.headers["cache-status"]), /^wiki; hit/);
      // Health checks GET / on their own; the page itself was fetched once.
      assert.equal(origin.requests.filter((r) => r.url === "/page").length, 1);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  it("redirects an http front to its https twin", async () => {
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        {
          name: "plain",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["secure.test"],
          backend: "http://127.0.0.1:9",
          redirectToHttps: true,
        },
      ],
    });
    try {
      const r = await get(port, "secure.test", "/a?b=1");
      assert.equal(r.status, 308);
      assert.equal(r.headers.location, "https://secure.test/a?b=1");
    } finally {
      await proxy.close();
    }
  });
});

describe("web fronts: TLS", () => {
  let ca: TestCa;
  let certs: string;
  let origin: Origin;
  let proxy: TestProxy;
  let port: number;
  let smtpsPort: number;
  before(async () => {
    ca = makeCa();
    certs = certsDir(ca);
    const pair = issue(ca, ["intranet.test", "*.intranet.test"]);
    writeFileSync(join(certs, "intranet.crt"), pair.cert);
    writeFileSync(join(certs, "intranet.key"), pair.key, { mode: 0o600 });
    writeFileSync(join(certs, "test-ca.pem"), ca.pem);
    origin = await echoing("tls");
    port = await freePort();
    smtpsPort = await freePort();
    proxy = await startProxy({
      certs,
      tls: { handshakeTimeout: "300ms" },
      fronts: [
        // Only here for its handshake: its backend is never reached.
        { name: "mx", protocol: "smtps", listen: [`127.0.0.1:${smtpsPort}`], backend: `127.0.0.1:${await freePort()}` },
        {
          name: "intranet",
          protocol: "https",
          listen: [`127.0.0.1:${port}`],
          hosts: ["intranet.test", "*.intranet.test"],
          backend: origin.url,
          tls: { hsts: "1d" },
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  for (const [what, front] of [
    ["an https front", () => port],
    ["an smtps front", () => smtpsPort],
  ] as const) {
    it(`closes a client of ${what} that never finishes its TLS handshake, after tls.handshakeTimeout`, async () => {
      const socket = connect(front(), "127.0.0.1");
      socket.on("error", () => {});
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    });
  }

  for (const version of ["--http2", "--http1.1"]) {
    it(`terminates TLS for a ${version.slice(2)} client chosen by SNI, with HSTS and X-Forwarded-Proto https`, async () => {
      const r = await curl([
        version,
        "-i",
        "--cacert",
        join(certs, "test-ca.pem"),
        "--resolve",
        `www.intranet.test:${port}:127.0.0.1`,
        `https://www.intranet.test:${port}/x`,
      ]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, version === "--http2" ? /^HTTP\/2 200/ : /^HTTP\/1\.1 200/);
      assert.match(r.out, /strict-transport-security: max-age=86400/i);
      assert.match(r.out, /"proto":"https"/);
    });

    it(`logs the bytes sent to a ${version.slice(2)} client`, async () => {
      const path = `/bytes${version.slice(1)}`;
      const r = await curl([
        version,
        "--cacert",
        join(certs, "test-ca.pem"),
        "--resolve",
        `www.intranet.test:${port}:127.0.0.1`,
        `https://www.intranet.test:${port}${path}`,
      ]);
      assert.equal(r.code, 0, r.out);
      await eventually(() => proxy.accessLines.some((l) => l.includes(path)), 5000, "the access line");
      const line = proxy.accessLines.find((l) => l.includes(path)) ?? "";
      const bytes = Number(/ TCP_MISS\/200 (\S+) GET /.exec(line)?.[1]);
      assert.ok(bytes >= Buffer.byteLength(r.out), line);
    });
  }

  it("serves a certificate replaced on disk, without a restart", async () => {
    const fingerprint = () =>
      new Promise<string>((resolve, reject) => {
        const s = tlsConnect({ port, host: "127.0.0.1", servername: "intranet.test", rejectUnauthorized: false }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.on("error", reject);
      });
    const before = await fingerprint();
    const pair = issue(ca, ["intranet.test", "*.intranet.test"]);
    writeFileSync(join(certs, "intranet.key"), pair.key, { mode: 0o600 });
    writeFileSync(join(certs, "intranet.crt"), pair.cert);
    const want = createHash("sha256")
      .update(Buffer.from(pair.cert.replace(/-----[^-]+-----|\s/g, ""), "base64"))
      .digest("hex");
    await eventually(async () => (await fingerprint()).replace(/:/g, "").toLowerCase() === want, 5000, "new certificate served");
    assert.notEqual(await fingerprint(), before);
  });

  it("fails the handshake for a name no front or certificate covers (no office CA)", async () => {
    const r = await curl(["-k", "--resolve", `other.test:${port}:127.0.0.1`, `https://other.test:${port}/`]);
    assert.notEqual(r.code, 0);
  });
});

describe("web fronts: redirect port and health Host", () => {
  it("redirects an http front to the port of the https front serving that host", async () => {
    const [plain, secure] = [await freePort(), await freePort()];
    const proxy = await startProxy({
      fronts: [
        {
          name: "www-plain",
          protocol: "http",
          listen: [`127.0.0.1:${plain}`],
          hosts: ["www.front.test", "other.test"],
          backend: "http://127.0.0.1:9",
          redirectToHttps: true,
        },
        {
          name: "www",
          protocol: "https",
          listen: [`127.0.0.1:${secure}`],
          hosts: ["*.front.test"],
          backend: "http://127.0.0.1:9",
        },
      ],
    });
    try {
      const cases: [host: string, location: string][] = [
        ["www.front.test", `https://www.front.test:${secure}/a/b?c=d`],
        // No https front here serves it: https is elsewhere, on its default port.
        ["other.test", "https://other.test/a/b?c=d"],
      ];
      for (const [host, location] of cases) {
        const r = await get(plain, host, "/a/b?c=d");
        assert.equal(r.status, 308);
        assert.equal(r.headers.location, location);
      }
    } finally {
      await proxy.close();
    }
  });

  it("sends health checks with the front's hostHeader, the Host real requests get", async () => {
    const origin = await startOrigin((_q, s) => s.end("ok"));
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [
        {
          name: "renamed",
          protocol: "http",
          listen: [`127.0.0.1:${port}`],
          hosts: ["public.test"],
          hostHeader: "backend.internal",
          backend: origin.url,
          health: { interval: "50ms", path: "/healthz" },
        },
      ],
    });
    try {
      await eventually(() => origin.requests.some((r) => r.url === "/healthz"), 5000, "a health check");
      const check = origin.requests.find((r) => r.url === "/healthz");
      assert.equal(check?.headers.host, "backend.internal");
      assert.equal((await get(port, "public.test", "/page")).status, 200);
      assert.equal(origin.requests.find((r) => r.url === "/page")?.headers.host, "backend.internal");
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
