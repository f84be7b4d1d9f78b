import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, rawExchange, startProxy, viaProxy } from "../helpers/proxy.js";

describe("request framing (RFC 9112 §3.2)", () => {
  for (const [name, head] of [
    ["no Host in HTTP/1.1", "GET http://a.example/ HTTP/1.1\r\n"],
    ["two Host fields", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n"],
  ] as const) {
    it(`answers ${name} with 400 and forwards nothing`, async () => {
      const proxy = await startProxy();
      try {
        const text = await rawExchange(proxy.port, `${head}Connection: close\r\n\r\n`);
        assert.match(text, /^HTTP\/1\.1 400 Bad Request/);
        assert.match(text, /Host header field/);
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("a client that stops reading", () => {
  it("is cut off after proxy.limits.sendTimeout and its origin connection released", async () => {
    let originClosed = false;
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { "content-length": String(1024 * 1024 * 1024) });
      res.on("close", () => {
        originClosed = true;
      });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once("drain", pump);
      };
      pump();
    });
    const proxy = await startProxy({ proxy: { limits: { sendTimeout: "300ms" } } });
    try {
      const socket = connect(proxy.port, "127.0.0.1");
      socket.write(`GET ${origin.url}/big HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise((r) => socket.once("data", r));
      socket.pause();
      await eventually(() => originClosed, 10_000, "origin connection released");
      // Reading again, the client finds its connection closed long before the body's end.
      let received = 0;
      socket.on("data", (c: Buffer) => {
        received += c.length;
      });
      const closed = new Promise((r) => socket.once("close", r));
      socket.resume();
      await closed;
      assert.ok(received < 1024 * 1024 * 1024);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe("requests for gatehouse itself", () => {
  it("refuses a CONNECT to its own listener even when connectPorts allows the port", async () => {
    const port = await freePort();
    const proxy = await startProxy({ proxy: { listen: [`127.0.0.1:${port}`], connectPorts: [443, port] } });
    try {
      for (const target of [`127.0.0.1:${port}`, `localhost:${port}`]) {
        const text = await rawExchange(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
        assert.match(text, /^HTTP\/1\.1 403 Forbidden[\s\S]*own listeners/, target);
      }
    } finally {
      await proxy.close();
    }
  });

  it("treats http://localhost:PORT/ as itself only when it listens on that port", async () => {
    const origin = await startOrigin((_q, s) => s.end("the origin"));
    const proxy = await startProxy();
    try {
      const other = await viaProxy(proxy.port, `http://localhost:${origin.port}/`);
      assert.equal(other.body.toString(), "the origin");
      const self = await viaProxy(proxy.port, `http://localhost:${proxy.port}/`);
      assert.match(self.body.toString(), /office web proxy/);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
