import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RecentLog } from "../../../src/admin/stats/recent.js";
import { FIELDS, fieldIndex, Series } from "../../../src/admin/stats/series.js";
import { hostOf, Stats } from "../../../src/admin/stats/stats.js";
import { TopWindow } from "../../../src/admin/stats/top.js";
import type { AccessEvent, QueryEvent } from "../../../src/events/events.js";

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);

describe("TopWindow", () => {
  it("ranks keys over the window, biggest first", () => {
    const w = new TopWindow({ keep: 10, cap: 100, hours: 24 });
    for (const [k, n] of [
      ["a", 3],
      ["b", 5],
      ["c", 1],
    ] as const)
      for (let i = 0; i < n; i++) w.add(k, T0);
    assert.deepEqual(w.top(2, T0), [
      { key: "b", count: 5 },
      { key: "a", count: 3 },
    ]);
  });

  it("forgets hours older than the window", () => {
    const w = new TopWindow({ keep: 10, cap: 100, hours: 2 });
    w.add("old", T0);
    w.add("new", T0 + HOUR);
    assert.deepEqual(
      w.top(5, T0 + HOUR).map((e) => e.key),
      ["old", "new"],
    );
    assert.deepEqual(w.top(5, T0 + 2 * HOUR), [{ key: "new", count: 1 }]);
    assert.deepEqual(w.top(5, T0 + 3 * HOUR), []);
  });

  it("keeps only the biggest keys of a closed hour, and stays within its cap while one is open", () => {
    const w = new TopWindow({ keep: 2, cap: 10, hours: 24 });
    for (let i = 0; i < 50; i++) w.add(`k${i}`, T0);
    assert.ok(w.size <= 10);
    w.add("k49", T0);
    w.add("k49", T0);
    w.add("k48", T0);
    w.add("x", T0 + HOUR);
    assert.equal(w.size, 3);
    assert.deepEqual(w.top(1, T0 + HOUR), [{ key: "k49", count: 3 }]);
  });

  it("keeps a note per key (the rule that blocked a name) while the key is counted", () => {
    const w = new TopWindow({ keep: 10, cap: 100, hours: 1 });
    w.add("ads.example", T0, "block/ads.txt:2: ads.example");
    assert.deepEqual(w.top(1, T0), [{ key: "ads.example", count: 1, note: "block/ads.txt:2: ads.example" }]);
  });

  it("adds up snapshots from elsewhere key by key (a previous run, another worker)", () => {
    const a = new TopWindow({ keep: 10, cap: 100, hours: 24 });
    const b = new TopWindow({ keep: 10, cap: 100, hours: 24 });
    a.add("x", T0);
    a.add("y", T0 + HOUR);
    b.add("x", T0);
    b.add("x", T0 + HOUR);
    const sum = new TopWindow({ keep: 10, cap: 100, hours: 24 });
    sum.absorb(a.snapshot(), T0 + HOUR);
    sum.absorb(b.snapshot(), T0 + HOUR);
    assert.deepEqual(sum.top(5, T0 + HOUR), [
      { key: "x", count: 3 },
      { key: "y", count: 1 },
    ]);
    assert.deepEqual(
      sum.snapshot().map((h) => h.start),
      [T0, T0 + HOUR],
    );
  });

  it("ignores malformed counts in a snapshot", () => {
    const w = new TopWindow({ keep: 10, cap: 100, hours: 24 });
    w.absorb([{ start: T0, counts: { ok: 2, bad: -1, worse: "7" as unknown as number } }], T0);
    assert.deepEqual(w.top(5, T0), [{ key: "ok", count: 2 }]);
  });
});

describe("Series", () => {
  it("sums slots and resets a slot when a new period reaches it", () => {
    const s = new Series(3, 1000);
    s.add(0, T0, 2);
    s.add(0, T0 + 1000, 3);
    assert.equal(s.sum(T0 + 1000, 2).requests, 5);
    s.add(0, T0 + 3000, 7);
    assert.equal(s.sum(T0 + 3000, 3).requests, 10);
    assert.equal(s.sum(T0 + 3000, 1).requests, 7);
  });

  it("turns into rows and back", () => {
    const s = new Series(1440, 60_000);
    s.add(fieldIndex.queries, T0, 4);
    s.add(fieldIndex.blockedQueries, T0 + 60_000, 1);
    const rows = s.rows(T0 + 60_000);
    assert.deepEqual(rows[0], [T0, ...FIELDS.map((f) => (f === "queries" ? 4 : 0))]);
    const copy = new Series(1440, 60_000);
    copy.absorb(rows, T0 + 60_000);
    assert.deepEqual(copy.rows(T0 + 60_000), rows);
  });
});

describe("RecentLog", () => {
  const line = (name: string) => ({
    time: T0,
    kind: "dns" as const,
    client: "10.0.0.1",
    name,
    request: "A",
    result: "forwarded",
    status: "NOERROR",
    blocked: false,
    ms: 1,
  });

  it("stays within its bytes, pushing out the oldest lines", () => {
    const log = new RecentLog(64 * 1024);
    for (let i = 0; i < 10_000; i++) log.push(line(`name-${i}.example`));
    assert.ok(log.usedBytes <= 64 * 1024);
    assert.ok(log.size > 100 && log.size < 10_000);
    assert.equal(log.search({}, 1)[0]?.name, "name-9999.example");
    assert.equal(log.search({ name: "name-0." }, 5).length, 0);
  });

  it("gives the lines after a seq, oldest first, for the live tail", () => {
    const log = new RecentLog(1024 * 1024);
    for (const n of ["a.example", "b.example", "c.example"]) log.push(line(n));
    assert.deepEqual(
      log.since(1, {}, 10).map((l) => l.name),
      ["b.example", "c.example"],
    );
    assert.deepEqual(
      log.since(0, { name: "c" }, 10).map((l) => l.name),
      ["c.example"],
    );
  });
});

describe("Stats from events", () => {
  const access = (over: Partial<AccessEvent>): AccessEvent => ({
    start: T0,
    durationMs: 5,
    client: "192.168.1.7",
    listener: "forward",
    result: "TCP_MISS",
    status: 200,
    bytes: 1000,
    method: "GET",
    url: "http://shop.example/cart",
    hierarchy: "HIER_DIRECT",
    peer: "shop.example",
    id: "x",
    ...over,
  });

  it("counts a hit's bytes as saved, and a block by a rule as blocked with its rule", () => {
    let now = T0;
    const s = new Stats({
      recentBytes: 1 << 20,
      rulePath: (f) => f.replace(/^.*rules\//, ""),
      upstreamsFor: () => [],
      now: () => now,
    });
    s.onAccess(access({}));
    s.onAccess(access({ result: "TCP_MEM_HIT", bytes: 400 }));
    s.onAccess(
      access({
        result: "TCP_DENIED",
        status: 403,
        url: "http://ads.example/x",
        decision: {
          stage: "blocklist",
          action: "block",
          reason: "",
          rule: { file: "/srv/rules/block/ads.txt", line: 4, text: "ads.example" },
        },
      }),
    );
    now += 1000;
    const day = s.minutes.sum(now, 1440);
    assert.equal(day.requests, 3);
    assert.equal(day.savedBytes, 400);
    assert.equal(day.blockedRequests, 1);
    assert.deepEqual(s.top("blocked", 5), [{ key: "ads.example", count: 1, note: "block/ads.txt:4: ads.example" }]);
    assert.deepEqual(s.top("sites", 5), [{ key: "shop.example", count: 2 }]);
  });

  it("marks an upstream failing when every server failed a query, and up again when it answers", () => {
    let now = T0;
    const s = new Stats({ recentBytes: 1 << 20, rulePath: (f) => f, upstreamsFor: () => ["10.0.0.53:53"], now: () => now });
    const q = (over: Partial<QueryEvent>): QueryEvent => ({
      time: now,
      client: "192.168.1.7",
      proto: "udp",
      name: "x.example",
      type: 1,
      rcode: 0,
      answer: "",
      result: "forwarded",
      decisions: [],
      ms: 12,
      ...over,
    });
    s.onQuery(q({ result: "error", rcode: 2, decisions: [{ stage: "local", action: "answer", reason: "local record" }] }));
    assert.equal(s.upstreamHealth(["10.0.0.53:53"])[0]?.state, "idle", "a local SERVFAIL is no upstream's failure");
    s.onQuery(
      q({
        result: "error",
        rcode: 2,
        decisions: [{ stage: "forward", action: "answer", reason: "SERVFAIL: every upstream failed" }],
      }),
    );
    assert.equal(s.upstreamHealth(["10.0.0.53:53"])[0]?.state, "failing");
    now += 1000;
    s.onQuery(q({ upstream: "10.0.0.53:53" }));
    assert.deepEqual(s.upstreamHealth(["10.0.0.53:53"])[0], {
      server: "10.0.0.53:53",
      state: "up",
      answers: 1,
      failures: 1,
      latencyMs: 12,
      lastAnswer: now,
      lastFailure: now - 1000,
    });
  });
});

describe("hostOf", () => {
  const cases: [url: string, method: string, host: string][] = [
    ["http://Example.COM/a?b", "GET", "example.com"],
    ["http://example.com:8080/", "GET", "example.com"],
    ["http://user:pw@example.com/", "GET", "example.com"],
    ["http://[2001:db8::1]:80/", "GET", "2001:db8::1"],
    ["example.com:443", "CONNECT", "example.com"],
    ["[::1]:443", "CONNECT", "::1"],
  ];
  for (const [url, method, host] of cases) it(`${method} ${url} -> ${host}`, () => assert.equal(hostOf(url, method), host));
});
