import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { eventually, rawExchange, startProxy, type TestProxy, viaProxy } from "../helpers/proxy.js";

describe("malformed and hostile requests", () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin((_q, s) => s.end("fine"));
    proxy = await startProxy({ proxy: { limits: { headerTimeout: "500ms", maxUrlLength: 2048, maxHeaderSize: "8KiB" } } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const target = () => `${origin.url}/smuggle`;
  const smuggling: [name: string, request: () => string, status: number][] = [
    [
      "Content-Length with Transfer-Encoding",
      () => `POST ${target()} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      "two different Content-Lengths",
      () => `POST ${target()} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`,
      400,
    ],
    ["a Content-Length list", () => `POST ${target()} HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde`, 400],
    ["obs-fold", () => `GET ${target()} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n`, 400],
    ["bare LF line ends", () => `GET ${target()} HTTP/1.1\nHost: x\n\n`, 400],
    ["a bare LF inside the header section", () => `GET ${target()} HTTP/1.1\r\nHost: x\nX-B: 1\r\n\r\n`, 400],
    ["a header name with a space", () => `GET ${target()} HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n`, 400],
    ["a space before the colon", () => `GET ${target()} HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n`, 400],
    ["a control character in a header name", () => `GET ${target()} HTTP/1.1\r\nHost: x\r\nX\x01A: 1\r\n\r\n`, 400],
    [
      "a transfer coding other than chunked",
      () => `POST ${target()} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      501,
    ],
    [
      "Transfer-Encoding in HTTP/1.0",
      () => `POST ${target()} HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    ["a negative Content-Length", () => `POST ${target()} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`, 400],
    ["a garbage request line", () => "HELLO THERE\r\n\r\n", 400],
    ["a URL longer than maxUrlLength", () => `GET ${target()}?${"a".repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [
      "headers larger than maxHeaderSize",
      () => `GET ${target()} HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(10000)}\r\n\r\n`,
      431,
    ],
    ["an ftp:// target", () => `GET ftp://127.0.0.1/x HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
  ];

  for (const [name, request, status] of smuggling) {
    it(`refuses ${name} with ${status}, forwards nothing, and keeps serving`, async () => {
      const before = origin.requests.length;
      const text = await rawExchange(proxy.port, request(), new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.equal(origin.requests.length, before, "nothing reached the origin");
      const ok = await viaProxy(proxy.port, `${origin.url}/after`);
      assert.equal(ok.body.toString(), "fine");
    });
  }

  it("logs a refused request with the client's address", async () => {
    await rawExchange(proxy.port, "HELLO THERE\r\n\r\n");
    await eventually(() => proxy.accessLines.some((l) => / 127\.0\.0\.1 NONE_NONE\/400 /.test(l)), 2000, "log line");
  });

  it("cuts off a client that sends its headers too slowly (slowloris)", async () => {
    const start = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const s = connect(proxy.port, "127.0.0.1", () => s.write(`GET ${origin.url}/ HTTP/1.1\r\nHost: x\r\n`));
      const drip = setInterval(() => s.writable && s.write("X-Drip: 1\r\n"), 100);
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString();
      });
      s.on("close", () => {
        clearInterval(drip);
        resolve(got);
      });
      s.on("error", () => {});
    });
    assert.match(outcome, /^HTTP\/1\.1 408 |^$/);
    assert.ok(Date.now() - start < 4000, "closed soon after headerTimeout");
    const ok = await viaProxy(proxy.port, `${origin.url}/after-slow`);
    assert.equal(ok.body.toString(), "fine");
  });
});
