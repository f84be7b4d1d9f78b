import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { type Reply, startProxy, type TestProxy, viaProxy } from "../helpers/proxy.js";

// One origin whose paths say how to answer; every case uses its own path so cases never share entries.
type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void;
const routes = new Map<string, Route>();
const counts = new Map<string, number>();
let seq = 0;
const path = (name: string) => `/${++seq}-${name.replace(/\W+/g, "-")}`;

function route(name: string, fn: Route): string {
  const p = path(name);
  routes.set(p, fn);
  return p;
}
const hits = (p: string) => counts.get(p) ?? 0;

describe("HTTP cache (RFC 9111)", () => {
  let origin: Origin;
  let proxy: TestProxy;
  const get = (p: string, headers: Record<string, string> = {}, method = "GET"): Promise<Reply> =>
    viaProxy(proxy.port, `${origin.url}${p}`, { headers, method });

  before(async () => {
    origin = await startOrigin((req, res) => {
      const p = (req.url ?? "").split("?")[0] as string;
      const n = (counts.get(p) ?? 0) + 1;
      counts.set(p, n);
      const fn = routes.get(p);
      if (fn) fn(req, res, n);
      else res.end("no route");
    });
    proxy = await startProxy({ proxy: { cache: { memory: "16MiB", maxObject: "1MiB" } } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const fixed =
    (headers: Record<string, string | string[]>, body = "body") =>
    (_req: IncomingMessage, res: ServerResponse, n: number) => {
      res.writeHead(200, headers);
      res.end(`${body}-${n}`);
    };

  it("serves a fresh max-age response from the cache, with Age and a hit Cache-Status", async () => {
    const p = route("max-age", fixed({ "cache-control": "max-age=60" }));
    const a = await get(p);
    assert.match(String(a.headers["cache-status"]), /^gatehouse; fwd=uri-miss; stored$/);
    const b = await get(p);
    assert.equal(b.body.toString(), "body-1");
    assert.equal(hits(p), 1);
    assert.match(String(b.headers["cache-status"]), /^gatehouse; hit; ttl=(59|60)$/);
    assert.match(String(b.headers.age), /^[01]$/);
  });

  const notStored: [name: string, headers: Record<string, string | string[]>, reqHeaders?: Record<string, string>][] = [
    ["no-store", { "cache-control": "no-store, max-age=60" }],
    ["private", { "cache-control": "private, max-age=60" }],
    ["Vary: *", { "cache-control": "max-age=60", vary: "*" }],
    [
      "a request with Authorization and no public/s-maxage/must-revalidate",
      { "cache-control": "max-age=60" },
      { authorization: "Basic eDp5" },
    ],
    ["a request with no-store", { "cache-control": "max-age=60" }, { "cache-control": "no-store" }],
    ["a response without freshness or validators for a 302", { location: "/x" }],
    ["a 200 without freshness or validators", { "content-type": "text/html" }],
  ];
  for (const [name, headers, reqHeaders] of notStored) {
    it(`does not store ${name}`, async () => {
      const p = route(name, (_q, res, n) => {
        res.writeHead(name.includes("302") ? 302 : 200, headers);
        res.end(`r${n}`);
      });
      await get(p, reqHeaders);
      await get(p, reqHeaders);
      assert.equal(hits(p), 2);
    });
  }

  it("stores an Authorization response marked public, and serves it to the next client", async () => {
    const p = route("auth-public", fixed({ "cache-control": "public, max-age=60" }));
    await get(p, { authorization: "Basic eDp5" });
    await get(p, { authorization: "Basic eDp5" });
    assert.equal(hits(p), 1);
  });

  it("never gives one client's Set-Cookie to another", async () => {
    const p = route("cookie", fixed({ "cache-control": "max-age=60", "set-cookie": "session=alice" }));
    const first = await get(p);
    assert.deepEqual(first.headers["set-cookie"], ["session=alice"]);
    const second = await get(p);
    assert.equal(hits(p), 1);
    assert.equal(second.headers["set-cookie"], undefined);
  });

  it("uses s-maxage over max-age for a shared cache", async () => {
    const p = route("s-maxage", fixed({ "cache-control": "max-age=0, s-maxage=60" }));
    await get(p);
    await get(p);
    assert.equal(hits(p), 1);
  });

  it("uses Expires minus Date when there is no max-age", async () => {
    const now = Date.now();
    const p = route("expires", fixed({ date: new Date(now).toUTCString(), expires: new Date(now + 60_000).toUTCString() }));
    await get(p);
    await get(p);
    assert.equal(hits(p), 1);
  });

  it("treats an invalid Expires as already stale", async () => {
    const p = route("bad-expires", fixed({ expires: "0" }));
    await get(p);
    await get(p);
    assert.equal(hits(p), 2);
  });

  it("gives heuristic freshness from Last-Modified for a 200", async () => {
    const p = route("heuristic", fixed({ "last-modified": new Date(Date.now() - 86_400_000).toUTCString() }));
    await get(p);
    await get(p);
    assert.equal(hits(p), 1);
  });

  for (const bad of ["max-age=abc", "max-age=99999999999999999999", "max-age=60, max-age=0", "MAX-AGE=60", 'max-age="60"']) {
    it(`handles Cache-Control: ${bad} without crashing`, async () => {
      const p = route(`cc ${bad}`, fixed({ "cache-control": bad }));
      const a = await get(p);
      const b = await get(p);
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      if (bad === "MAX-AGE=60" || bad === "max-age=99999999999999999999") assert.equal(hits(p), 1, "valid directive, any case");
      if (bad === "max-age=abc" || bad === "max-age=60, max-age=0") assert.equal(hits(p), 2, "invalid or conflicting: stale");
    });
  }

  it("revalidates a stale entry with If-None-Match and serves it after a 304, updating its headers", async () => {
    const p = route("etag", (req, res, n) => {
      if (req.headers["if-none-match"] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', "cache-control": "max-age=60", "x-updated": `yes-${n}` });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v1"', "cache-control": "max-age=0", "x-updated": "no" });
      res.end("etag body");
    });
    await get(p);
    const b = await get(p);
    assert.equal(b.status, 200);
    assert.equal(b.body.toString(), "etag body");
    assert.equal(b.headers["x-updated"], "yes-2");
    assert.match(String(b.headers["cache-status"]), /fwd=stale; fwd-status=304/);
    const c = await get(p);
    assert.equal(hits(p), 2, "fresh again after the 304");
    assert.equal(c.headers["x-updated"], "yes-2");
  });

  it("revalidates with If-Modified-Since when there is only Last-Modified", async () => {
    const lm = new Date(Date.now() - 10_000).toUTCString();
    const p = route("ims", (req, res) => {
      if (req.headers["if-modified-since"] === lm) {
        res.writeHead(304, { "cache-control": "no-cache" });
        res.end();
        return;
      }
      res.writeHead(200, { "last-modified": lm, "cache-control": "no-cache" });
      res.end("lm body");
    });
    await get(p);
    const b = await get(p);
    assert.equal(b.body.toString(), "lm body");
    assert.equal(hits(p), 2);
  });

  it("answers a client's If-None-Match for a fresh entry with 304 from the cache", async () => {
    const p = route("client-inm", fixed({ etag: '"abc"', "cache-control": "max-age=60" }));
    await get(p);
    const r = await get(p, { "if-none-match": 'W/"abc", "zzz"' });
    assert.equal(r.status, 304);
    assert.equal(r.headers.etag, '"abc"');
    assert.equal(hits(p), 1);
  });

  it("answers a client's If-Modified-Since for a fresh entry with 304 from the cache", async () => {
    const lm = new Date(Date.now() - 60_000).toUTCString();
    const p = route("client-ims", fixed({ "last-modified": lm, "cache-control": "max-age=60" }));
    await get(p);
    const r = await get(p, { "if-modified-since": new Date().toUTCString() });
    assert.equal(r.status, 304);
    assert.equal(hits(p), 1);
  });

  const requestDirectives: [name: string, req: Record<string, string>, origins: number][] = [
    ["no-cache", { "cache-control": "no-cache" }, 2],
    ["Pragma: no-cache", { pragma: "no-cache" }, 2],
    ["max-age=0", { "cache-control": "max-age=0" }, 2],
    ["min-fresh beyond the lifetime", { "cache-control": "min-fresh=120" }, 2],
    ["max-age larger than the age", { "cache-control": "max-age=30" }, 1],
  ];
  for (const [name, req, origins] of requestDirectives) {
    it(`honours the request's ${name}`, async () => {
      const p = route(`req ${name}`, fixed({ "cache-control": "max-age=60" }));
      await get(p);
      await get(p, req);
      assert.equal(hits(p), origins);
    });
  }

  it("answers only-if-cached with 504 when nothing is stored", async () => {
    const p = route("oic", fixed({ "cache-control": "max-age=60" }));
    const r = await get(p, { "cache-control": "only-if-cached" });
    assert.equal(r.status, 504);
    assert.equal(hits(p), 0);
  });

  it("serves a stale entry to a request with max-stale", async () => {
    const p = route("max-stale", fixed({ "cache-control": "max-age=0", etag: '"s"' }));
    await get(p);
    const r = await get(p, { "cache-control": "max-stale=100" });
    assert.equal(r.body.toString(), "body-1");
    assert.equal(hits(p), 1);
  });

  it("never serves stale with must-revalidate, even to max-stale", async () => {
    const p = route("must-reval", fixed({ "cache-control": "max-age=0, must-revalidate" }));
    await get(p);
    await get(p, { "cache-control": "max-stale=100" });
    assert.equal(hits(p), 2);
  });

  it("always revalidates a response with no-cache", async () => {
    const p = route("resp-no-cache", fixed({ "cache-control": "no-cache, max-age=60" }));
    await get(p);
    await get(p);
    assert.equal(hits(p), 2);
  });

  it("serves a stale entry within stale-while-revalidate and refreshes it in the background", async () => {
    const p = route("swr", fixed({ "cache-control": "max-age=0, stale-while-revalidate=60" }));
    await get(p);
    const r = await get(p);
    assert.equal(r.body.toString(), "body-1");
    assert.match(String(r.headers["cache-status"]), /detail=stale-while-revalidate/);
    const deadline = Date.now() + 2000;
    while (hits(p) < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    assert.equal(hits(p), 2);
  });

  it("serves a stale entry when the origin fails, within stale-if-error", async () => {
    const p = route("sie", (_req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { "cache-control": "max-age=0, stale-if-error=60" });
        res.end("good copy");
      } else {
        res.writeHead(503);
        res.end("down");
      }
    });
    await get(p);
    const r = await get(p);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "good copy");
  });

  for (const [cc, served] of [
    ["max-age=0", true],
    ["max-age=0, must-revalidate", false],
    ["max-age=0, proxy-revalidate", false],
    ["max-age=0, no-cache", false],
    ["s-maxage=0", false],
  ] as const) {
    it(`${served ? "serves" : "does not serve"} a stale ${cc} copy when the origin drops the connection`, async () => {
      const p = route(`drop ${cc}`, (req, res, n) => {
        if (n === 1) {
          res.writeHead(200, { "cache-control": cc });
          res.end("old copy");
        } else req.socket.destroy();
      });
      await get(p);
      const r = await get(p);
      if (served) {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), "old copy");
        assert.match(String(r.headers["cache-status"]), /detail=origin-error/);
      } else assert.equal(r.status, 502);
    });
  }

  it("keeps Vary variants apart and serves each its own", async () => {
    const p = route("vary", (req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60", vary: "Accept-Language" });
      res.end(`lang=${req.headers["accept-language"]}`);
    });
    assert.equal((await get(p, { "accept-language": "en" })).body.toString(), "lang=en");
    assert.equal((await get(p, { "accept-language": "de" })).body.toString(), "lang=de");
    assert.equal((await get(p, { "accept-language": "en" })).body.toString(), "lang=en");
    assert.equal((await get(p, { "accept-language": "de" })).body.toString(), "lang=de");
    assert.equal(hits(p), 2);
  });

  it("invalidates a stored URL after a successful POST, and its Location", async () => {
    const other = route("inval-location", fixed({ "cache-control": "max-age=60" }));
    const p = route("inval", (req, res, n) => {
      if (req.method === "POST") {
        res.writeHead(201, { location: other });
        res.end();
        return;
      }
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(`v${n}`);
    });
    await get(p);
    await get(other);
    await get(p, {}, "POST");
    assert.equal((await get(p)).body.toString(), "v3");
    await get(other);
    assert.equal(hits(other), 2);
  });

  it("answers HEAD from a stored GET", async () => {
    const p = route("head", fixed({ "cache-control": "max-age=60" }));
    await get(p);
    const r = await get(p, {}, "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers["content-length"], "6");
    assert.equal(hits(p), 1);
  });

  const ranges: [range: string, status: number, contentRange: string | undefined, body: string | RegExp][] = [
    ["bytes=0-3", 206, "bytes 0-3/26", "abcd"],
    ["bytes=-3", 206, "bytes 23-25/26", "xyz"],
    ["bytes=20-", 206, "bytes 20-25/26", "uvwxyz"],
    ["bytes=30-40", 416, "bytes */26", ""],
    ["bytes=0-1,4-5", 206, undefined, /content-range: bytes 0-1\/26\r\n\r\nab\r\n[\s\S]*content-range: bytes 4-5\/26\r\n\r\nef/],
    ["items=0-1", 200, undefined, "abcdefghijklmnopqrstuvwxyz"],
  ];
  for (const [range, status, contentRange, body] of ranges) {
    it(`answers Range: ${range} from a stored 200 with ${status}`, async () => {
      const p = route(`range ${range}`, (_q, res) => {
        res.writeHead(200, { "cache-control": "max-age=60", "content-type": "text/plain" });
        res.end("abcdefghijklmnopqrstuvwxyz");
      });
      await get(p);
      const r = await get(p, { range });
      assert.equal(r.status, status);
      assert.equal(r.headers["content-range"], contentRange);
      if (typeof body === "string") assert.equal(r.body.toString(), body);
      else assert.match(r.body.toString(), body);
      assert.equal(hits(p), 1);
    });
  }

  it("collapses 100 concurrent misses into one origin fetch", async () => {
    const p = route("collapse", (_q, res) => {
      setTimeout(() => {
        res.writeHead(200, { "cache-control": "max-age=60" });
        res.end("shared");
      }, 200);
    });
    const replies = await Promise.all(Array.from({ length: 100 }, () => get(p)));
    assert.ok(replies.every((r) => r.body.toString() === "shared"));
    assert.equal(hits(p), 1);
  });

  it("does not make concurrent requests for an uncacheable URL wait for each other", async () => {
    let open = 0;
    let maxOpen = 0;
    const p = route("no-collapse", (_q, res) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      setTimeout(() => {
        open--;
        res.writeHead(200, { "cache-control": "no-store" });
        res.end("private");
      }, 300);
    });
    await Promise.all(Array.from({ length: 10 }, () => get(p)));
    assert.equal(hits(p), 10);
    assert.ok(maxOpen >= 9, `only ${maxOpen} requests reached the origin at once`);
  });

  it("streams an object over maxObject through without storing it", async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    const p = route("big", (_q, res) => {
      res.writeHead(200, { "cache-control": "max-age=60", "content-length": String(big.length) });
      res.end(big);
    });
    assert.equal((await get(p)).body.length, big.length);
    assert.equal((await get(p)).body.length, big.length);
    assert.equal(hits(p), 2);
  });

  it("purges a URL", async () => {
    const p = route("purge", fixed({ "cache-control": "max-age=60" }));
    await get(p);
    assert.equal(proxy.app.cache.purge(`${origin.url}${p}`), 1);
    await get(p);
    assert.equal(hits(p), 2);
  });

  it("counts hits and misses for the hit ratio", () => {
    const s = proxy.app.cache.stats();
    assert.ok(s.hits > 0 && s.misses > 0 && s.entries > 0 && s.bytes > 0);
    assert.ok(s.hitRatio > 0 && s.hitRatio < 1);
  });
});

describe("HTTP cache: statuses", () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin((req, res) => {
      const p = (req.url ?? "").split("?")[0] as string;
      counts.set(p, (counts.get(p) ?? 0) + 1);
      const [, status, cc] = /^\/\d+-status-(\d+)-(.*)$/.exec(p) ?? [];
      res.writeHead(Number(status), cc ? { "cache-control": decodeURIComponent(cc) } : {});
      res.end("x");
    });
    proxy = await startProxy();
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const table: [status: number, cc: string, stored: boolean][] = [
    [500, "max-age=3600", true],
    [404, "", false],
    [302, "max-age=3600", true],
    [299, "max-age=3600", true],
    [206, "max-age=3600", false],
    [599, "max-age=3600,must-understand", false],
    [200, "no-store,must-understand,max-age=3600", true],
  ];
  for (const [status, cc, stored] of table) {
    it(`${stored ? "stores" : "does not store"} a ${status}${cc ? ` with ${cc}` : ""}`, async () => {
      const p = `/${++seq}-status-${status}-${encodeURIComponent(cc)}`;
      await viaProxy(proxy.port, `${origin.url}${p}`);
      await viaProxy(proxy.port, `${origin.url}${p}`);
      assert.equal(counts.get(p), stored ? 1 : 2);
    });
  }
});
