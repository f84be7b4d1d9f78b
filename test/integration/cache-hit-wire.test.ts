import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect as h2connect } from "node:http2";
import { type AddressInfo, connect, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { prepareHead, setPreparedHead } from "../../src/http/prepared-head.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, startProxy, type TestProxy } from "../helpers/proxy.js";
import { certsDir, issue, makeCa } from "../helpers/tls.js";

// What a client reads on the wire when the cache answers: every header line in order, the body,
// the connection staying usable, and the bytes the access log counts. Memory-tier hits to HTTP/1.1
// clients are written from a header block prepared when the entry was stored; everything else
// through node's writeHead. These tests hold both to the same bytes.

/** One response as read off a socket. */
interface WireResponse {
  statusLine: string;
  /** Header lines as sent, "Name: value". */
  lines: string[];
  body: Buffer;
  /** Header and body bytes, as the access log should count them. */
  bytes: number;
}

/** A client connection that reads responses one after another, framed by Content-Length. */
class Wire {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on("error", () => {});
  }

  static open(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => resolve(new Wire(s)));
      s.once("error", reject);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** The next response; `noBody` for HEAD and 304, whose Content-Length frames nothing. */
  async response(noBody = false): Promise<WireResponse> {
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        const [statusLine = "", ...lines] = this.buf.toString("latin1", 0, end).split("\r\n");
        const length = noBody ? 0 : Number(lines.find((l) => /^content-length:/i.test(l))?.split(": ")[1]);
        assert.ok(Number.isInteger(length), `a response without Content-Length: ${statusLine} ${lines.join(" | ")}`);
        const total = end + 4 + length;
        if (this.buf.length >= total) {
          const body = this.buf.subarray(end + 4, total);
          this.buf = this.buf.subarray(total);
          return { statusLine, lines, body, bytes: total };
        }
      }
      if (this.closed) throw new Error(`connection closed with ${this.buf.length} bytes of an incomplete response`);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no complete response within 5 s")), 5000);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /** Resolves once the server has closed the connection. */
  async closedByServer(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => (this.wake = r));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Header lines against expectations: a string is the exact line, a RegExp must match it. */
function assertLines(actual: string[], expected: (string | RegExp)[], what: string): void {
  const shown = `${what}:\n  ${actual.join("\n  ")}`;
  assert.equal(actual.length, expected.length, shown);
  expected.forEach((e, i) => {
    const line = actual[i] as string;
    if (typeof e === "string") assert.equal(line, e, shown);
    else assert.match(line, e, shown);
  });
}

describe("a prepared header block against node's writeHead", () => {
  // Each request names a case and how to write it; both ways must put the same bytes on the wire.
  interface Case {
    name: string;
    status: number;
    flat: string[];
    method?: string;
    requestHeaders?: string;
    server?: { keepAliveTimeout?: number; maxRequestsPerSocket?: number };
    /** Whether the prepared head may be used (false: it must leave the response to writeHead). */
    prepared: boolean;
  }
  const body = Buffer.alloc(100, "x");
  const stored = ["content-type", "text/plain", "x-two", "a", "x-two", "b", "content-length", "100", "via", "1.1 gatehouse"];
  const dated = ["date", "Tue, 01 Dec 2026 10:00:00 GMT", ...stored];
  const cases: Case[] = [
    { name: "a GET for fields with Date", status: 200, flat: dated, prepared: true },
    { name: "a GET for fields without Date (node adds one)", status: 200, flat: stored, prepared: true },
    { name: "a HEAD", status: 200, flat: dated, method: "HEAD", prepared: true },
    { name: "another status", status: 404, flat: dated, prepared: true },
    { name: "a server without keep-alive timeout", status: 200, flat: dated, server: { keepAliveTimeout: 0 }, prepared: true },
    {
      name: "a client closing the connection",
      status: 200,
      flat: dated,
      requestHeaders: "Connection: close\r\n",
      prepared: false,
    },
    {
      name: "a client waiting for 100-continue",
      status: 200,
      flat: dated,
      requestHeaders: "Expect: 100-continue\r\n",
      prepared: false,
    },
    {
      name: "a limit of requests per connection",
      status: 200,
      flat: dated,
      server: { maxRequestsPerSocket: 5 },
      prepared: false,
    },
  ];
  const tail = ["age", "3", "cache-status", "gatehouse; hit; ttl=57"];
  const tookPrepared = new Map<string, boolean>();
  let server: Server;
  let port: number;

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const [, index, way] = /^\/(\d+)\/(\w+)$/.exec(req.url ?? "") ?? [];
      const c = cases[Number(index)] as Case;
      let prepared = false;
      if (way === "prepared") {
        const head = prepareHead(c.status, c.flat);
        assert.ok(head, c.name);
        prepared = setPreparedHead(res, head, "age: 3\r\ncache-status: gatehouse; hit; ttl=57\r\n");
        tookPrepared.set(c.name, prepared);
      }
      if (!prepared) res.writeHead(c.status, [...c.flat, ...tail]);
      res.end(req.method === "HEAD" ? undefined : body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  cases.forEach((c, i) => {
    it(`writes the same response for ${c.name}`, async () => {
      const defaults = { keepAliveTimeout: server.keepAliveTimeout, maxRequestsPerSocket: server.maxRequestsPerSocket };
      Object.assign(server, c.server ?? {});
      try {
        const raw: string[] = [];
        for (const way of ["writeHead", "prepared"]) {
          const wire = await Wire.open(port);
          const expect = c.requestHeaders?.startsWith("Expect") ?? false;
          wire.send(`${c.method ?? "GET"} /${i}/${way} HTTP/1.1\r\nHost: x\r\n${c.requestHeaders ?? ""}\r\n`);
          // Node answers Expect itself with 100 Continue unless a checkContinue listener exists.
          if (expect) await wire.response(true);
          const r = await wire.response(c.method === "HEAD");
          wire.close();
          raw.push(
            `${r.statusLine}\n${r.lines.join("\n")}\n\n${r.body.toString("latin1")}`.replace(/^Date: .*$/m, "Date: (now)"),
          );
        }
        assert.equal(raw[1], raw[0]);
        assert.equal(tookPrepared.get(c.name), c.prepared);
      } finally {
        Object.assign(server, defaults);
      }
    });
  });

  const refused: [name: string, status: number, flat: string[]][] = [
    ["204 (no body)", 204, dated],
    ["304 (no body)", 304, dated],
    ["no Content-Length (node would frame it)", 200, ["content-type", "text/plain"]],
    ["a value node refuses", 200, [...dated, "x-bad", "a\u0001b"]],
    ["a name node refuses", 200, [...dated, "bad name", "x"]],
    ["Connection among the fields", 200, [...dated, "connection", "close"]],
    ["Transfer-Encoding among the fields", 200, [...dated, "transfer-encoding", "chunked"]],
    [
      "a Content-Disposition beyond ASCII (node re-encodes it)",
      200,
      [...dated, "content-disposition", "attachment; filename=caf\u00e9"],
    ],
  ];
  for (const [name, status, flat] of refused) {
    it(`leaves ${name} to writeHead`, () => {
      assert.equal(prepareHead(status, flat), undefined);
    });
  }
});

describe("cache hits on the wire", () => {
  interface Route {
    fields: string[];
    body: Buffer;
    /** Node adds a Date unless told not to. */
    noDate?: boolean;
    /** The fields of a 304 to a conditional request; without them, every request gets the 200. */
    notModified?: string[];
  }
  const routes = new Map<string, Route>();
  const served = new Map<string, number>();
  let seq = 0;
  let origin: Origin;
  let proxy: TestProxy;
  let frontPort: number;
  let httpsPort: number;
  let caPem: string;

  before(async () => {
    origin = await startOrigin((req, res) => {
      const path = req.url ?? "";
      served.set(path, (served.get(path) ?? 0) + 1);
      const r = routes.get(path);
      if (!r) {
        res.writeHead(404, { "content-length": "0" });
        res.end();
        return;
      }
      if (r.notModified && req.headers["if-none-match"] !== undefined) {
        res.writeHead(304, r.notModified);
        res.end();
        return;
      }
      if (r.noDate) res.sendDate = false;
      res.writeHead(200, r.noDate ? r.fields : ["date", new Date().toUTCString(), ...r.fields]);
      res.end(r.body);
    });
    const ca = makeCa();
    const certs = certsDir(ca);
    const pair = issue(ca, ["site.test"]);
    writeFileSync(join(certs, "site.crt"), pair.cert);
    writeFileSync(join(certs, "site.key"), pair.key, { mode: 0o600 });
    caPem = ca.pem;
    frontPort = await freePort();
    httpsPort = await freePort();
    proxy = await startProxy({
      certs,
      proxy: { cache: { memory: "16MiB", maxObject: "1MiB" }, limits: { idleTimeout: "30s" } },
      fronts: [
        {
          name: "wiki",
          protocol: "http",
          listen: [`127.0.0.1:${frontPort}`],
          hosts: ["wiki.test"],
          backend: origin.url,
          cache: true,
        },
        {
          name: "site",
          protocol: "https",
          listen: [`127.0.0.1:${httpsPort}`],
          hosts: ["site.test"],
          backend: origin.url,
          cache: true,
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const route = (r: Route): { path: string; url: string } => {
    const path = `/wire/${++seq}`;
    routes.set(path, r);
    return { path, url: `${origin.url}${path}` };
  };
  const request = (method: string, url: string, headers = "", version = "1.1") =>
    `${method} ${url} HTTP/${version}\r\nHost: ${new URL(url).host}\r\n${headers}\r\n`;
  /** The access lines for a URL: result/status and bytes, in the order they were logged. */
  const logged = (url: string) =>
    proxy.accessLines
      .filter((l) => l.includes(` ${url} `))
      .map((l) => {
        const m = / (\S+\/\d{3}) (\d+) \S+ \S+ \S+ \S+ (\S+)/.exec(l);
        return { result: m?.[1], bytes: Number(m?.[2]), type: m?.[3] };
      });

  const kib = randomBytes(1024);
  const fields = (length: number) => [
    "content-type",
    "text/plain",
    "cache-control",
    "max-age=600",
    "etag",
    '"v1"',
    "x-origin",
    "one",
    "x-origin",
    "two",
    "content-length",
    String(length),
  ];
  const keepAlive = ["Connection: keep-alive", "Keep-Alive: timeout=30"];
  const hitLines = (date: string, length: number, status = /^cache-status: gatehouse; hit; ttl=\d+$/) => [
    `date: ${date}`,
    "content-type: text/plain",
    "cache-control: max-age=600",
    'etag: "v1"',
    "x-origin: one",
    "x-origin: two",
    `content-length: ${length}`,
    "via: 1.1 gatehouse",
    /^age: \d+$/,
    status,
    ...keepAlive,
  ];

  interface HitCase {
    name: string;
    route: Route;
    /** Request fields naming the variant stored and asked for again (Vary). */
    variant?: string;
    /** The request that is answered from the cache, after a plain GET stored the response. */
    method?: string;
    headers?: string;
    version?: string;
    statusLine: string;
    /** The expected lines, given the Date the origin sent. */
    lines: (date: string) => (string | RegExp)[];
    body?: Buffer;
    result: string;
    /** The server closes the connection after the hit. */
    closes?: boolean;
  }
  const big = randomBytes(64 * 1024);
  const huge = randomBytes(300 * 1024);
  const cases: HitCase[] = [
    {
      name: "a 1 KiB GET",
      route: { fields: fields(1024), body: kib },
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => hitLines(d, 1024),
      body: kib,
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "a 64 KiB GET",
      route: { fields: fields(big.length), body: big },
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => hitLines(d, big.length),
      body: big,
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "a 300 KiB GET (written slice by slice)",
      route: { fields: fields(huge.length), body: huge },
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => hitLines(d, huge.length),
      body: huge,
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "a HEAD (no body, the connection still framed right)",
      route: { fields: fields(1024), body: kib },
      method: "HEAD",
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => hitLines(d, 1024),
      body: Buffer.alloc(0),
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "If-None-Match with the stored ETag (304)",
      route: { fields: fields(1024), body: kib },
      headers: 'If-None-Match: "v1"\r\n',
      statusLine: "HTTP/1.1 304 Not Modified",
      lines: (d) => [
        `date: ${d}`,
        "cache-control: max-age=600",
        'etag: "v1"',
        "via: 1.1 gatehouse",
        /^age: \d+$/,
        /^cache-status: gatehouse; hit; ttl=\d+$/,
        ...keepAlive,
      ],
      body: Buffer.alloc(0),
      result: "TCP_IMS_HIT/304",
    },
    {
      name: "a Range (206)",
      route: { fields: fields(1024), body: kib },
      headers: "Range: bytes=0-9\r\n",
      statusLine: "HTTP/1.1 206 Partial Content",
      lines: (d) => [
        `date: ${d}`,
        "content-type: text/plain",
        "cache-control: max-age=600",
        'etag: "v1"',
        "x-origin: one",
        "x-origin: two",
        "via: 1.1 gatehouse",
        "content-range: bytes 0-9/1024",
        "content-length: 10",
        /^age: \d+$/,
        /^cache-status: gatehouse; hit; ttl=\d+$/,
        ...keepAlive,
      ],
      body: kib.subarray(0, 10),
      result: "TCP_MEM_HIT/206",
    },
    {
      name: "a variant of a Vary'd entry",
      route: { fields: ["vary", "accept-language", ...fields(1024)], body: kib },
      variant: "Accept-Language: fr\r\n",
      headers: "Accept-Language: fr\r\n",
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => [`date: ${d}`, "vary: accept-language", ...hitLines(d, 1024).slice(1)],
      body: kib,
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "a stale-while-revalidate hit",
      route: {
        fields: ["cache-control", "max-age=1, stale-while-revalidate=600", "age", "30", "content-length", "4"],
        body: Buffer.from("dusk"),
      },
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => [
        `date: ${d}`,
        "cache-control: max-age=1, stale-while-revalidate=600",
        "content-length: 4",
        "via: 1.1 gatehouse",
        /^age: (3\d|[4-9]\d)$/,
        /^cache-status: gatehouse; hit; ttl=-\d+; detail=stale-while-revalidate$/,
        ...keepAlive,
      ],
      body: Buffer.from("dusk"),
      result: "TCP_STALE_HIT/200",
    },
    {
      name: "an origin that sent no Date (the hit gets one)",
      route: { fields: ["cache-control", "max-age=600", "content-length", "5"], body: Buffer.from("plain"), noDate: true },
      statusLine: "HTTP/1.1 200 OK",
      lines: () => [
        "cache-control: max-age=600",
        "content-length: 5",
        "via: 1.1 gatehouse",
        /^age: \d+$/,
        /^cache-status: gatehouse; hit; ttl=\d+$/,
        /^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/,
        ...keepAlive,
      ],
      body: Buffer.from("plain"),
      result: "TCP_MEM_HIT/200",
    },
    {
      name: "an HTTP/1.0 client",
      route: { fields: fields(1024), body: kib },
      version: "1.0",
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => [...hitLines(d, 1024).slice(0, -2), "Connection: close"],
      body: kib,
      result: "TCP_MEM_HIT/200",
      closes: true,
    },
    {
      name: "a client closing the connection",
      route: { fields: fields(1024), body: kib },
      headers: "Connection: close\r\n",
      statusLine: "HTTP/1.1 200 OK",
      lines: (d) => [...hitLines(d, 1024).slice(0, -2), "Connection: close"],
      body: kib,
      result: "TCP_MEM_HIT/200",
      closes: true,
    },
  ];

  for (const c of cases) {
    it(`answers ${c.name} from the cache with the stored fields, Age, Cache-Status and the connection's own`, async () => {
      const { path, url } = route(c.route);
      const wire = await Wire.open(proxy.port);
      try {
        wire.send(request("GET", url, c.variant));
        const miss = await wire.response();
        const date = /^date: (.*)$/m.exec(miss.lines.join("\n"))?.[1] ?? "";
        wire.send(request(c.method ?? "GET", url, c.headers, c.version));
        const hit = await wire.response(c.method === "HEAD" || c.statusLine.includes(" 304 "));
        assert.equal(hit.statusLine, c.statusLine);
        assertLines(hit.lines, c.lines(date), c.name);
        assert.deepEqual(hit.body, c.body);
        const responses = [miss, hit];
        if (c.closes) await wire.closedByServer();
        else {
          // The connection goes on after the hit: another hit on it is framed and answered.
          wire.send(request("GET", url, c.variant));
          const next = await wire.response();
          assert.equal(next.statusLine, "HTTP/1.1 200 OK");
          assert.deepEqual(next.body, c.route.body);
          responses.push(next);
        }
        await eventually(() => logged(url).length === responses.length, 5000, "the access lines");
        const lines = logged(url);
        assert.equal(lines[1]?.result, c.result);
        // Each line counts the bytes that went to the client for its response, header included.
        assert.deepEqual(
          lines.map((l) => l.bytes),
          responses.map((r) => r.bytes),
        );
        // The logged media type is the one the client was sent (a 304 sends none).
        assert.equal(lines[1]?.type, hit.lines.includes("content-type: text/plain") ? "text/plain" : "-");
        if (c.result !== "TCP_STALE_HIT/200") assert.equal(served.get(path), 1);
      } finally {
        wire.close();
      }
    });
  }

  it("answers pipelined requests in order, hits and a miss among them", async () => {
    const a = route({ fields: fields(1024), body: kib });
    const b = route({ fields: fields(big.length), body: big });
    const wire = await Wire.open(proxy.port);
    try {
      wire.send(request("GET", a.url));
      await wire.response();
      wire.send(request("GET", a.url) + request("HEAD", a.url) + request("GET", b.url) + request("GET", a.url));
      const [r1, r2, r3, r4] = [await wire.response(), await wire.response(true), await wire.response(), await wire.response()];
      assert.deepEqual(r1.body, kib);
      assert.match(r1.lines.join("\n"), /^cache-status: gatehouse; hit/m);
      assert.equal(r2.body.length, 0);
      assert.match(r2.lines.join("\n"), /^content-length: 1024$/m);
      assert.deepEqual(r3.body, big);
      assert.match(r3.lines.join("\n"), /^cache-status: gatehouse; fwd=uri-miss; stored$/m);
      assert.deepEqual(r4.body, kib);
    } finally {
      wire.close();
    }
  });

  it("relays the Set-Cookie of a 304 that refreshed the entry, to that client only", async () => {
    const { url } = route({
      fields: ["cache-control", "no-cache", "etag", '"c1"', "content-length", "5", "set-cookie", "first=1"],
      body: Buffer.from("fresh"),
      notModified: ["cache-control", "no-cache", "etag", '"c1"', "set-cookie", "session=bob"],
    });
    const wire = await Wire.open(proxy.port);
    try {
      wire.send(request("GET", url));
      await wire.response();
      wire.send(request("GET", url));
      const refreshed = await wire.response();
      assert.equal(refreshed.statusLine, "HTTP/1.1 200 OK");
      assertLines(
        refreshed.lines,
        // A 304's fields replace the stored ones and go after those it leaves (RFC 9111 §3.2).
        [
          "content-length: 5",
          "cache-control: no-cache",
          'etag: "c1"',
          /^date: /,
          "via: 1.1 gatehouse",
          /^age: \d+$/,
          "cache-status: gatehouse; fwd=stale; fwd-status=304",
          "set-cookie: session=bob",
          ...keepAlive,
        ],
        "a refreshed entry",
      );
      assert.equal(refreshed.body.toString(), "fresh");
      await eventually(() => logged(url).length === 2, 5000, "the access lines");
      assert.deepEqual(logged(url)[1], { result: "TCP_REFRESH_UNMODIFIED/200", bytes: refreshed.bytes, type: "-" });
    } finally {
      wire.close();
    }
  });

  it("counts Age up on later hits of the same entry", async () => {
    const { url } = route({ fields: fields(1024), body: kib });
    const wire = await Wire.open(proxy.port);
    const age = (r: WireResponse) => Number(/^age: (\d+)$/m.exec(r.lines.join("\n"))?.[1]);
    const ttl = (r: WireResponse) => Number(/ttl=(\d+)/.exec(r.lines.join("\n"))?.[1]);
    try {
      wire.send(request("GET", url));
      await wire.response();
      wire.send(request("GET", url));
      const first = await wire.response();
      // Age is in whole seconds: after more than one, it must have grown.
      await new Promise((r) => setTimeout(r, 1100));
      wire.send(request("GET", url));
      const later = await wire.response();
      assert.ok(age(later) >= age(first) + 1, `${age(first)} then ${age(later)}`);
      assert.equal(ttl(later), 600 - age(later));
    } finally {
      wire.close();
    }
  });

  it("answers a hit through a front with Cache-Status naming the front", async () => {
    const { path } = route({ fields: fields(1024), body: kib });
    const wire = await Wire.open(frontPort);
    try {
      const get = `GET ${path} HTTP/1.1\r\nHost: wiki.test\r\n\r\n`;
      wire.send(get);
      const miss = await wire.response();
      const date = /^date: (.*)$/m.exec(miss.lines.join("\n"))?.[1] ?? "";
      wire.send(get);
      const hit = await wire.response();
      assertLines(
        hit.lines,
        [
          `date: ${date}`,
          "content-type: text/plain",
          "cache-control: max-age=600",
          'etag: "v1"',
          "x-origin: one",
          "x-origin: two",
          "content-length: 1024",
          /^via: 1\.1 /,
          /^age: \d+$/,
          /^cache-status: wiki; hit; ttl=\d+$/,
          "Connection: keep-alive",
          /^Keep-Alive: timeout=\d+$/,
        ],
        "a front's hit",
      );
      assert.deepEqual(hit.body, kib);
      await eventually(
        () => proxy.accessLines.some((l) => l.includes(`TCP_MEM_HIT/200 ${hit.bytes} GET http://wiki.test`)),
        5000,
        "the hit's line",
      );
    } finally {
      wire.close();
    }
  });

  it("answers a hit over HTTP/2 on an https front with the same fields", async () => {
    const { path } = route({ fields: fields(1024), body: kib });
    const session = h2connect(`https://127.0.0.1:${httpsPort}`, { ca: caPem, servername: "site.test" });
    const get = () =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const s = session.request({ ":path": path, ":authority": "site.test" });
        let headers: Record<string, unknown> = {};
        const chunks: Buffer[] = [];
        s.on("response", (h) => (headers = h));
        s.on("data", (c: Buffer) => chunks.push(c));
        s.on("end", () => resolve({ headers, body: Buffer.concat(chunks) }));
        s.on("error", reject);
        s.end();
      });
    try {
      const miss = await get();
      const hit = await get();
      assert.equal(hit.headers[":status"], 200);
      assert.deepEqual(hit.body, kib);
      assert.equal(hit.headers.date, miss.headers.date);
      assert.equal(hit.headers["content-length"], "1024");
      assert.equal(hit.headers["content-type"], "text/plain");
      assert.deepEqual(hit.headers["x-origin"], "one, two");
      assert.match(String(hit.headers.age), /^\d+$/);
      assert.match(String(hit.headers["cache-status"]), /^site; hit; ttl=\d+$/);
      assert.equal(hit.headers.connection, undefined);
      await eventually(
        () => proxy.accessLines.some((l) => / TCP_MEM_HIT\/200 (\d+) GET https:\/\/site\.test/.test(l)),
        5000,
        "the hit's line",
      );
      const line = proxy.accessLines.find((l) => l.includes("TCP_MEM_HIT/200") && l.includes("https://site.test")) ?? "";
      assert.equal(Number(/ TCP_MEM_HIT\/200 (\d+) /.exec(line)?.[1]), 1024, line);
    } finally {
      session.close();
    }
  });
});
