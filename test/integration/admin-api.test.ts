import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ROUTES } from "../../src/admin/server.js";
import { call, loopbackSession, startAdmin, type TestAdmin } from "../helpers/admin.js";
import { dig } from "../helpers/dns.js";
import { startContentServer } from "../helpers/dns-server.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { eventually, viaProxy } from "../helpers/proxy.js";

interface Overview {
  rates: { requestsPerSecond: number; queriesPerSecond: number };
  day: Record<"requests" | "hits" | "misses" | "savedBytes" | "blockedRequests" | "queries" | "blockedQueries", number>;
  hitRatio: number;
  blockedShare: number;
  top: Record<string, { key: string; count: number; note?: string }[]>;
  upstreams: { server: string; state: string; answers: number; failures: number; latencyMs?: number }[];
}

interface Line {
  seq: number;
  kind: string;
  client: string;
  name: string;
  result: string;
  status: string;
  rule?: string;
  blocked: boolean;
}

const FILES = {
  hosts: "127.0.0.1 site.test ads.test other.test\n",
  "block/ads.txt": "# ads\nads.test\ntracker.test\n",
};

/** Reads Server-Sent Events from a path until `done` says enough; returns the events seen. */
async function readEvents(
  url: string,
  done: (events: { event: string; data: string }[]) => boolean,
  onOpen: () => Promise<unknown> = async () => {},
): Promise<{ event: string; data: string }[]> {
  const res = await request(url);
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
  const events: { event: string; data: string }[] = [];
  let buffer = "";
  const opened = onOpen();
  for await (const chunk of res.body) {
    buffer += (chunk as Buffer).toString();
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) events.push({ event, data });
      end = buffer.indexOf("\n\n");
    }
    if (done(events)) break;
  }
  res.body.destroy();
  await opened;
  return events;
}

describe("admin API over real traffic", () => {
  let gh: TestAdmin;
  let origin: Origin;
  let content: Awaited<ReturnType<typeof startContentServer>>;

  before(async () => {
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "max-age=600" });
      res.end("hello from the origin\n");
    });
    content = await startContentServer({ "up.example": [{ type: "A", value: "192.0.2.1" }] });
    gh = await startAdmin({ files: FILES, dns: { upstreams: [content.label] } });
    const at = (host: string, path: string) => `http://${host}:${origin.port}${path}`;
    assert.equal((await viaProxy(gh.proxyPort, at("site.test", "/a"))).status, 200);
    assert.equal((await viaProxy(gh.proxyPort, at("site.test", "/a"))).status, 200);
    assert.equal((await viaProxy(gh.proxyPort, at("other.test", "/b"))).status, 200);
    assert.equal((await viaProxy(gh.proxyPort, at("ads.test", "/banner"))).status, 403);
    assert.equal((await viaProxy(gh.proxyPort, at("ads.test", "/pixel"))).status, 403);
    await dig(gh.dnsPort, ["up.example", "A"]);
    await dig(gh.dnsPort, ["tracker.test", "A"]);
  });
  after(async () => {
    await gh.close();
    await origin.close();
    await content.close();
  });

  it("counts requests, cache hits and blocks, and ranks sites, blocked names and clients", async () => {
    const o = (await call<Overview>(gh.base, "GET", "/api/overview")).body;
    assert.equal(o.day.requests, 5);
    assert.equal(o.day.hits, 1);
    assert.equal(o.day.misses, 2);
    assert.equal(o.day.blockedRequests, 2);
    assert.ok(o.day.savedBytes > 0);
    assert.equal(o.hitRatio, 1 / 3);
    assert.equal(o.day.queries, 2);
    assert.equal(o.day.blockedQueries, 1);
    assert.equal(o.blockedShare, 3 / 7);
    assert.deepEqual(o.top.sites, [
      { key: "site.test", count: 2 },
      { key: "other.test", count: 1 },
    ]);
    assert.deepEqual(o.top.blocked, [
      { key: "ads.test", count: 2, note: "block/ads.txt:2: ads.test" },
      { key: "tracker.test", count: 1, note: "block/ads.txt:3: tracker.test" },
    ]);
    assert.deepEqual(o.top.clients, [{ key: "127.0.0.1", count: 7 }]);
    assert.deepEqual(o.top.domains?.[0], { key: "up.example", count: 1 });
    assert.ok(o.rates.requestsPerSecond > 0);
  });

  it("shows each DNS upstream with its answers and latency", async () => {
    const o = (await call<Overview>(gh.base, "GET", "/api/overview")).body;
    const up = o.upstreams.find((u) => u.server === content.label);
    assert.equal(up?.state, "up");
    assert.equal(up?.answers, 1);
    assert.equal(typeof up?.latencyMs, "number");
  });

  const searches: [what: string, query: string, expect: (lines: Line[]) => void][] = [
    ["newest first", "", (l) => assert.ok(l.every((x, i) => i === 0 || (l[i - 1] as Line).seq > x.seq))],
    ["by name", "name=ADS.test", (l) => assert.deepEqual([...new Set(l.map((x) => x.name))], ["ads.test"])],
    [
      "by result",
      "result=TCP_MEM_HIT",
      (l) =>
        assert.deepEqual(
          l.map((x) => x.name),
          ["site.test"],
        ),
    ],
    [
      "by blocked",
      "result=blocked",
      (l) =>
        assert.deepEqual(
          l.map((x) => `${x.kind} ${x.name}`),
          ["dns tracker.test", "http ads.test", "http ads.test"],
        ),
    ],
    ["by rule", "rule=block/ads.txt:2", (l) => assert.equal(l.length, 2)],
    ["by client", "client=127.0.", (l) => assert.equal(l.length, 7)],
    ["by a client that sent nothing", "client=10.1.2.3", (l) => assert.equal(l.length, 0)],
  ];
  for (const [what, query, expect] of searches) {
    it(`searches the recent lines ${what}`, async () => {
      const r = await call<{ lines: Line[] }>(gh.base, "GET", `/api/logs?${query}`);
      assert.equal(r.status, 200);
      expect(r.body.lines);
    });
  }

  it("exposes Prometheus metrics made from the same events", async () => {
    const r = await call(gh.base, "GET", "/metrics");
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^text\/plain/);
    const t = r.text;
    assert.match(t, /^gatehouse_http_requests_total\{result="TCP_MISS",status="200"\} 2$/m);
    assert.match(t, /^gatehouse_http_requests_total\{result="TCP_MEM_HIT",status="200"\} 1$/m);
    assert.match(t, /^gatehouse_http_requests_total\{result="TCP_DENIED",status="403"\} 2$/m);
    assert.match(t, /^gatehouse_dns_queries_total\{result="blocked",type="A"\} 1$/m);
    assert.match(t, /^gatehouse_dns_queries_total\{result="forwarded",type="A"\} 1$/m);
    assert.match(t, /^gatehouse_blocked_total\{source="proxy",list="block\/ads.txt"\} 2$/m);
    assert.match(t, /^gatehouse_blocked_total\{source="dns",list="block\/ads.txt"\} 1$/m);
    assert.match(t, /^gatehouse_cache_hits_total 1$/m);
    assert.match(t, /^gatehouse_cache_misses_total 2$/m);
    assert.match(t, /^gatehouse_http_upstream_duration_seconds_count 2$/m);
    assert.match(t, new RegExp(`^gatehouse_dns_upstream_duration_seconds_count\\{upstream="${content.label}"\\} 1$`, "m"));
    // Two block entries and the three names of the hosts file.
    assert.match(t, /^gatehouse_rules_entries 5$/m);
    assert.match(t, /^gatehouse_rules_errors 0$/m);
    assert.match(t, /^process_cpu_user_seconds_total /m);
  });

  it("streams the overview at once and lines as they happen", async () => {
    const overview = await readEvents(`${gh.base}/api/events`, (e) => e.length >= 1);
    assert.equal(overview[0]?.event, "overview");
    assert.equal((JSON.parse(overview[0]?.data as string) as Overview).day.requests >= 5, true);
    const lines = await readEvents(
      `${gh.base}/api/logs/stream?name=other`,
      (e) => e.some((x) => x.event === "lines"),
      () => viaProxy(gh.proxyPort, `http://other.test:${origin.port}/live`),
    );
    const sent = JSON.parse(lines.find((e) => e.event === "lines")?.data as string) as Line[];
    assert.deepEqual(
      sent.map((l) => l.name),
      ["other.test"],
    );
  });

  it("reports the status `gatehouse status` prints", async () => {
    const r = await call<{
      listeners: { proxy: string[]; dns: string[]; admin: string };
      rules: { entries: number; files: number };
      upstreams: { server: string }[];
    }>(gh.base, "GET", "/api/status");
    assert.deepEqual(r.body.listeners.proxy, [`127.0.0.1:${gh.proxyPort}`]);
    assert.deepEqual(r.body.listeners.dns, [`127.0.0.1:${gh.dnsPort}`]);
    assert.equal(r.body.listeners.admin, gh.base.replace("http://", ""));
    assert.equal(r.body.rules.files, 2);
    assert.deepEqual(
      r.body.upstreams.map((u) => u.server),
      [content.label],
    );
  });

  it("purges a URL, and every URL under a prefix that the proxy answered", async () => {
    const s = await loopbackSession(gh.base);
    const one = await call(gh.base, "POST", `/api/cache/purge?url=${encodeURIComponent(`http://other.test:${origin.port}/b`)}`, {
      session: s,
    });
    assert.deepEqual(one.body, { url: `http://other.test:${origin.port}/b`, purged: 1 });
    const prefix = await call(
      gh.base,
      "POST",
      `/api/cache/purge?prefix=${encodeURIComponent(`http://site.test:${origin.port}`)}`,
      {
        session: s,
      },
    );
    assert.equal(prefix.status, 200);
    assert.equal(prefix.body.purged, 1);
    const after = await viaProxy(gh.proxyPort, `http://site.test:${origin.port}/a`);
    assert.match(String(after.headers["cache-status"]), /fwd=uri-miss/);
  });
});

describe("admin DNS upstream health", () => {
  it("shows an upstream whose queries fail as failing, on the page and in the metrics", async () => {
    const content = await startContentServer({});
    content.mode = "servfail";
    const gh = await startAdmin({ dns: { upstreams: [content.label] } });
    try {
      assert.equal((await dig(gh.dnsPort, ["down.example", "A"])).status, "SERVFAIL");
      const o = (await call<Overview>(gh.base, "GET", "/api/overview")).body;
      assert.deepEqual(
        o.upstreams.map((u) => [u.server, u.state, u.failures]),
        [[content.label, "failing", 1]],
      );
      const m = await call(gh.base, "GET", "/metrics");
      assert.match(m.text, new RegExp(`^gatehouse_dns_upstream_up\\{upstream="${content.label}"\\} 0$`, "m"));
    } finally {
      await gh.close();
      await content.close();
    }
  });
});

describe("admin API bad input", () => {
  let gh: TestAdmin;
  before(async () => {
    gh = await startAdmin();
  });
  after(() => gh.close());

  const bodies: [what: string, raw: string | Buffer, type: string, status: number, code: string][] = [
    ["malformed JSON", '{"name": ', "application/json", 400, "GH_ADMIN_BAD_JSON"],
    ["a JSON array", "[1,2]", "application/json", 400, "GH_ADMIN_BAD_JSON"],
    ["a form instead of JSON", "name=x&action=allow", "application/x-www-form-urlencoded", 415, "GH_ADMIN_MEDIA_TYPE"],
    ["a body over 16 KiB", JSON.stringify({ name: "a".repeat(20_000) }), "application/json", 413, "GH_ADMIN_TOO_LARGE"],
    [
      "a name that is markup",
      JSON.stringify({ name: "<script>x</script>", action: "allow" }),
      "application/json",
      400,
      "GH_ADMIN_BAD_NAME",
    ],
    ["an unknown action", JSON.stringify({ name: "a.example", action: "delete" }), "application/json", 400, "GH_ADMIN_BAD_FIELD"],
  ];
  for (const [what, raw, type, status, code] of bodies) {
    it(`refuses ${what} with ${status} ${code}, and keeps serving`, async () => {
      const s = await loopbackSession(gh.base);
      const r = await call(gh.base, "POST", "/api/decide", { raw, contentType: type, session: s });
      assert.equal(r.status, status, r.text);
      assert.equal(r.body.code, code);
      assert.equal(typeof r.body.error, "string");
      assert.equal((await call(gh.base, "GET", "/api/overview")).status, 200);
    });
  }

  it("answers an unknown path 404 and a wrong method 405 with the methods it takes", async () => {
    assert.equal((await call(gh.base, "GET", "/api/nope")).status, 404);
    const r = await call(gh.base, "DELETE", "/api/rules/file");
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, "GET, PUT");
  });

  it("refuses an explain of something that is not a name", async () => {
    const r = await call(gh.base, "GET", `/api/explain?target=${encodeURIComponent("<img src=x>")}`);
    assert.equal(r.status, 400);
    assert.equal(r.body.code, "GH_ADMIN_BAD_TARGET");
  });
});

describe("admin history", () => {
  it("keeps the last 24 hours of counts across a restart", async () => {
    const origin = await startOrigin((_req, res) => res.end("x"));
    const first = await startAdmin();
    try {
      for (let i = 0; i < 3; i++) await viaProxy(first.proxyPort, `${origin.url}/${i}`);
    } finally {
      await first.close();
    }
    const second = await startAdmin({ state: first.state });
    try {
      const h = await call<{ fields: string[]; rows: number[][] }>(second.base, "GET", "/api/history");
      const col = h.body.fields.indexOf("requests") + 1;
      assert.equal(
        h.body.rows.reduce((n, r) => n + (r[col] as number), 0),
        3,
      );
      await eventually(async () => (await call<Overview>(second.base, "GET", "/api/overview")).body.day.requests === 3);
    } finally {
      await second.close();
      await origin.close();
    }
  });
});

describe("admin OpenAPI description", () => {
  it("describes every API route and /metrics, and nothing that does not exist", () => {
    const doc = JSON.parse(readFileSync(new URL("../../docs/openapi.json", import.meta.url), "utf8")) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const described = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const served = ROUTES.filter((r) => r.path.startsWith("/api/") || r.path === "/metrics")
      .map((r) => `${r.method} ${r.path}`)
      .sort();
    assert.deepEqual(described, served);
  });
});

describe("admin rules files: the intercept lists", () => {
  let gh: TestAdmin;
  before(async () => {
    gh = await startAdmin({ files: { "intercept.txt": "shop.example\n", "no-intercept.txt": "bank.example\n" } });
  });
  after(() => gh.close());

  for (const path of ["intercept.txt", "no-intercept.txt"]) {
    it(`lists ${path} as editable, opens it, refuses a bad line and saves a good edit`, async () => {
      const list = await call<{ files: { path: string; kind: string; editable: boolean }[] }>(gh.base, "GET", "/api/rules");
      assert.deepEqual(
        list.body.files.filter((f) => f.path === path).map((f) => [f.kind, f.editable]),
        [["intercept list", true]],
      );
      const got = await call<{ kind: string; text: string; version: string }>(
        gh.base,
        "GET",
        `/api/rules/file?path=${encodeURIComponent(path)}`,
      );
      assert.equal(got.status, 200, got.text);
      assert.equal(got.body.kind, "intercept list");
      const s = await loopbackSession(gh.base);
      const bad = await call<{ code: string; errors: { line: number }[] }>(gh.base, "PUT", "/api/rules/file", {
        session: s,
        body: { path, text: `${got.body.text}a..b\n`, version: got.body.version },
      });
      assert.equal(bad.status, 422, bad.text);
      assert.deepEqual(
        bad.body.errors.map((e) => e.line),
        [2],
      );
      const put = await call<{ entries: number }>(gh.base, "PUT", "/api/rules/file", {
        session: s,
        body: { path, text: `${got.body.text}more.example\n`, version: got.body.version },
      });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.body.entries, 2);
    });
  }
});
