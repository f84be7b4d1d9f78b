import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { type AddressInfo, connect, createServer as createTcpServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { type Origin, readBody, startOrigin } from "../helpers/origin.js";
import { eventually, rawExchange, startProxy, type TestProxy, viaProxy } from "../helpers/proxy.js";

describe("forward proxy: plain HTTP", () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin(async (req, res) => {
      if (req.url === "/echo") {
        const body = await readBody(req);
        res.writeHead(200, { "x-length": String(body.length), "x-sha": createHash("sha256").update(body).digest("hex") });
        res.end(`got ${req.method}`);
        return;
      }
      if (req.url === "/hop") {
        res.writeHead(200, { connection: "x-secret, keep-alive", "x-secret": "1", "keep-alive": "timeout=5", "x-kept": "1" });
        res.end("ok");
        return;
      }
      if (req.url === "/hints") {
        res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" });
        res.end("after hints");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"] });
      res.end(req.method === "HEAD" ? undefined : "hello");
    });
    proxy = await startProxy();
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  it("forwards an absolute-form GET and adds Via both ways", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/x?q=1`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "hello");
    assert.equal(r.headers.via, "1.1 gatehouse");
    assert.deepEqual(r.headers["set-cookie"], ["a=1", "b=2"]);
    const seen = origin.requests.at(-1);
    assert.equal(seen?.url, "/x?q=1");
    assert.equal(seen?.headers.via, "1.1 gatehouse");
    assert.equal(seen?.headers.host, `127.0.0.1:${origin.port}`);
  });

  it("removes hop-by-hop and Connection-listed headers in both directions", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/hop`, {
      headers: {
        connection: "x-private",
        "x-private": "secret",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "x-ok": "1",
        te: "trailers",
      },
    });
    assert.equal(r.headers["x-secret"], undefined);
    assert.equal(r.headers["x-kept"], "1");
    const seen = origin.requests.at(-1);
    assert.equal(seen?.headers["x-private"], undefined);
    assert.equal(seen?.headers["proxy-authorization"], undefined);
    assert.equal(seen?.headers.te, undefined);
    assert.equal(seen?.headers["x-ok"], "1");
  });

  it("replaces the Host header with the target's authority (RFC 9112 §3.2.2)", async () => {
    await viaProxy(proxy.port, `${origin.url}/h`, { headers: { host: "evil.example" } });
    assert.equal(origin.requests.at(-1)?.headers.host, `127.0.0.1:${origin.port}`);
  });

  for (const [name, headers] of [
    ["Content-Length", { "content-length": String(3 * 1024 * 1024) }],
    ["chunked", { "transfer-encoding": "chunked" }],
  ] as const) {
    it(`streams a ${name} request body to the origin intact`, async () => {
      const body = Buffer.alloc(3 * 1024 * 1024, 7);
      const r = await viaProxy(proxy.port, `${origin.url}/echo`, { method: "POST", headers, body });
      assert.equal(r.status, 200);
      assert.equal(r.headers["x-length"], String(body.length));
      assert.equal(r.headers["x-sha"], createHash("sha256").update(body).digest("hex"));
    });
  }

  it("answers HEAD with the origin's headers and no body", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/head`, { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(origin.requests.at(-1)?.method, "HEAD");
  });

  it("sends 100 Continue to a client that expects it, then forwards the body", async () => {
    const text = await rawExchange(
      proxy.port,
      `POST ${origin.url}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      /100 Continue/,
    );
    assert.match(text, /^HTTP\/1\.1 100 Continue/);
    const full = await new Promise<string>((resolve) => {
      const s = connect(proxy.port, "127.0.0.1", () => {
        s.write(
          `POST ${origin.url}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
        );
      });
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString();
        if (got.includes("100 Continue") && !got.includes("got POST")) s.write("hello");
      });
      s.on("close", () => resolve(got));
    });
    assert.match(full, /HTTP\/1\.1 200 OK[\s\S]*x-length: 5[\s\S]*got POST/);
  });

  it("relays 103 Early Hints before the final response", async () => {
    const text = await rawExchange(proxy.port, `GET ${origin.url}/hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 103 Early Hints\r\n[Ll]ink: <\/style\.css>; rel=preload; as=style/);
    assert.match(text, /HTTP\/1\.1 200 OK[\s\S]*after hints$/);
  });

  it("keeps the client connection alive across requests", async () => {
    const text = await rawExchange(
      proxy.port,
      `GET ${origin.url}/a HTTP/1.1\r\nHost: x\r\n\r\nGET ${origin.url}/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(text.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
  });

  it("answers OPTIONS with Max-Forwards: 0 itself", async () => {
    const before = origin.requests.length;
    const r = await viaProxy(proxy.port, `${origin.url}/`, { method: "OPTIONS", headers: { "max-forwards": "0" } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers.allow), /GET/);
    assert.equal(origin.requests.length, before);
  });

  it("decrements Max-Forwards when it forwards OPTIONS", async () => {
    await viaProxy(proxy.port, `${origin.url}/`, { method: "OPTIONS", headers: { "max-forwards": "5" } });
    assert.equal(origin.requests.at(-1)?.headers["max-forwards"], "4");
  });

  it("answers TRACE with Max-Forwards: 0 by echoing the request without credentials", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/t`, {
      method: "TRACE",
      headers: { "max-forwards": "0", cookie: "s=1", "x-probe": "yes" },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "message/http");
    assert.match(r.body.toString(), /^TRACE http:\/\/127\.0\.0\.1:\d+\/t HTTP\/1\.1/);
    assert.match(r.body.toString(), /x-probe: yes/i);
    assert.doesNotMatch(r.body.toString(), /s=1/);
  });

  it("shows what it is to a browser that opens the proxy's own address", async () => {
    const r = await viaProxy(proxy.port, "/", { headers: { accept: "text/html" } });
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /office web proxy/);
  });

  it("answers an absolute URL naming the proxy itself instead of forwarding to itself", async () => {
    const r = await viaProxy(proxy.port, `http://127.0.0.1:${proxy.port}/loop`);
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /office web proxy/);
    assert.ok(!proxy.accessLines.some((l) => / GET \/loop /.test(l)), "no inner request reached the proxy");
  });

  it("writes one Squid-format access line per request", async () => {
    const url = `${origin.url}/logged`;
    await viaProxy(proxy.port, url);
    await eventually(() => proxy.accessLines.some((l) => l.includes(url)), 2000, "access line");
    const line = proxy.accessLines.find((l) => l.includes(url)) as string;
    assert.match(
      line,
      new RegExp(
        `^\\d+\\.\\d{3} +\\d+ 127\\.0\\.0\\.1 TCP_MISS/200 \\d+ GET ${url.replace(/[.]/g, "\\.")} - HIER_DIRECT/127\\.0\\.0\\.1 text/plain\\n$`,
      ),
    );
  });

  it("relays relayed responses with a Via naming itself as a loop: 508", async () => {
    const r = await viaProxy(proxy.port, `${origin.url}/loop`, { headers: { via: "1.1 gatehouse" } });
    assert.equal(r.status, 508);
  });
});

describe("forward proxy: streaming with back-pressure", () => {
  it("does not read ahead of a client that stops reading a large download", async () => {
    let written = 0;
    let origin: Origin | undefined;
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { "content-length": String(1024 * 1024 * 1024) });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (written < 1024 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    const proxy = await startProxy();
    try {
      const socket = connect(proxy.port, "127.0.0.1");
      socket.write(`GET ${origin.url}/big HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise((r) => socket.once("data", r));
      socket.pause();
      // The origin must stall within the socket buffers' worth of data, far below the 1 GiB body.
      let last = -1;
      await eventually(
        async () => {
          const now = written;
          const stable = now === last;
          last = now;
          await new Promise((r) => setTimeout(r, 100));
          return stable;
        },
        5000,
        "origin stalls",
      );
      assert.ok(written < 64 * 1024 * 1024, `origin wrote ${written} bytes to a paused client`);
      socket.destroy();
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe("forward proxy: origin failures", () => {
  const cases: {
    name: string;
    status: number;
    text: RegExp;
    setup: () => Promise<{ url: string; close(): Promise<void> }>;
    config?: object;
  }[] = [
    {
      name: "a refused connection gives 502 saying refused",
      status: 502,
      text: /refused the connection/,
      setup: async () => {
        const s = createTcpServer();
        await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
        const port = (s.address() as AddressInfo).port;
        await new Promise<void>((r) => s.close(() => r()));
        return { url: `http://127.0.0.1:${port}/`, close: async () => {} };
      },
    },
    {
      name: "an origin that never answers gives 504 saying it did not answer",
      status: 504,
      text: /did not answer within 300ms/,
      config: { upstream: { headersTimeout: "300ms" } },
      setup: async () => {
        const o = await startOrigin(() => {});
        return { url: `${o.url}/slow`, close: () => o.close() };
      },
    },
    {
      name: "an origin that resets gives 502 saying reset",
      status: 502,
      text: /reset the connection|before sending a complete response/,
      setup: async () => {
        const o = await startOrigin((req) => req.socket.destroy());
        return { url: `${o.url}/reset`, close: () => o.close() };
      },
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const target = await c.setup();
      const proxy = await startProxy({ proxy: c.config ?? {} });
      try {
        const r = await viaProxy(proxy.port, target.url);
        assert.equal(r.status, c.status);
        assert.match(r.body.toString(), c.text);
        const ok = await startOrigin((_q, s) => s.end("still here"));
        assert.equal((await viaProxy(proxy.port, `${ok.url}/`)).body.toString(), "still here");
        await ok.close();
      } finally {
        await proxy.close();
        await target.close();
      }
    });
  }

  it("closes the client connection when the origin dies mid-body, so the body never looks complete", async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { "content-length": "100000" });
      res.write(Buffer.alloc(1000));
      setImmediate(() => res.socket?.destroy());
    });
    const proxy = await startProxy();
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: "127.0.0.1", port: proxy.port, path: `${origin.url}/die`, agent: false }, (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve("complete"));
          res.on("error", () => resolve("aborted"));
          res.on("aborted", () => resolve("aborted"));
        });
        req.on("error", () => resolve("aborted"));
        req.end();
      });
      assert.equal(outcome, "aborted");
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe("forward proxy: who may use it", () => {
  it("refuses clients outside proxy.clients with 403", async () => {
    const origin = await startOrigin((_q, s) => s.end("secret"));
    const proxy = await startProxy({ proxy: { clients: ["10.0.0.0/8"] } });
    try {
      const r = await viaProxy(proxy.port, `${origin.url}/`);
      assert.equal(r.status, 403);
      assert.match(r.body.toString(), /not in proxy\.clients/);
      assert.equal(origin.requests.length, 0);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe("forward proxy: CONNECT", () => {
  let echo: ReturnType<typeof createTcpServer>;
  let echoPort: number;
  before(async () => {
    // Echoes, and on the client's FIN sends a last word before its own FIN: proves half-close.
    echo = createTcpServer({ allowHalfOpen: true }, (s) => {
      s.pipe(s, { end: false });
      s.on("end", () => s.end("bye"));
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => echo.close(() => r())));

  it("tunnels bytes both ways and passes a half-close on", async () => {
    const proxy = await startProxy({ proxy: { connectPorts: [443, echoPort] } });
    try {
      const got = await new Promise<string>((resolve) => {
        const s = connect({ port: proxy.port, host: "127.0.0.1", allowHalfOpen: true }, () => {
          s.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\n`);
        });
        let text = "";
        s.on("data", (c: Buffer) => {
          text += c.toString();
          if (text.endsWith("\r\n\r\n") && !text.includes("ping")) s.end("ping");
        });
        s.on("end", () => resolve(text));
      });
      assert.equal(got, "HTTP/1.1 200 Connection Established\r\n\r\npingbye");
      await eventually(
        () => proxy.accessLines.some((l) => / TCP_TUNNEL\/200 \d+ CONNECT 127\.0\.0\.1:\d+ /.test(l)),
        2000,
        "tunnel log line",
      );
    } finally {
      await proxy.close();
    }
  });

  it("refuses CONNECT to a port not in proxy.connectPorts with 403", async () => {
    const proxy = await startProxy();
    try {
      const text = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(text, /^HTTP\/1\.1 403 Forbidden/);
      assert.match(text, /may only go to port 443/);
    } finally {
      await proxy.close();
    }
  });

  it("closes an idle tunnel after proxy.limits.tunnelIdleTimeout", async () => {
    const proxy = await startProxy({ proxy: { connectPorts: [echoPort], limits: { tunnelIdleTimeout: "200ms" } } });
    try {
      const text = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: x\r\n\r\n`, undefined, 5000);
      assert.equal(text, "HTTP/1.1 200 Connection Established\r\n\r\n");
    } finally {
      await proxy.close();
    }
  });

  it("answers 502 when the tunnel's target refuses", async () => {
    const s = createTcpServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const proxy = await startProxy({ proxy: { connectPorts: [port] } });
    try {
      const text = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(text, /^HTTP\/1\.1 502 Bad Gateway[\s\S]*ECONNREFUSED/);
    } finally {
      await proxy.close();
    }
  });
});
