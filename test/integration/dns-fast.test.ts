import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, before, describe, it, mock } from "node:test";
import type { ConfigInput } from "../../src/config/schema.js";
import { QueryLog } from "../../src/dns/query-log.js";
import type { DnsResolver } from "../../src/dns/resolver.js";
import { buildQuery, TYPE } from "../../src/dns/wire.js";
import type { QueryEvent } from "../../src/events/events.js";
import { dig, framed, startResolver, TcpClient, type TestClock, ttlOf, until } from "../helpers/dns.js";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { eventually } from "../helpers/proxy.js";
import { rulesDir, writeRule } from "../helpers/rules.js";

// A cache hit whose way through the stages is known is answered ahead of them (answerNow). These
// tests ask the same questions again and again, so most answers come that way, and check that
// nothing the stages decide is lost: blocks, rule edits, local records, per-client rules, the ACL,
// the TTLs, ID, question case and EDNS of each client's own query, and the query log.

interface Fast {
  port: number;
  dir: string;
  resolver: DnsResolver;
  clock: TestClock;
  events: QueryEvent[];
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Rules (watched, as the app watches them), resolver and listener on 127.0.0.1:0, as the app wires them. */
async function start(files: Record<string, string>, dns: ConfigInput["dns"]): Promise<Fast> {
  const dir = rulesDir(files);
  const r = await startResolver(dns, { rules: dir }, { watch: true });
  const seen: QueryEvent[] = [];
  r.events.query.subscribe((e) => seen.push(e));
  return {
    port: r.port,
    dir,
    resolver: r.resolver,
    clock: r.clock,
    events: seen,
    get lines() {
      return r.queryLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    close: r.close,
  };
}

/** One UDP query from `from` (any 127/8 address reaches the listener), and its answer. */
function ask(port: number, bytes: Buffer, from = "127.0.0.1"): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => {
      s.close();
      reject(new Error("no answer within 3 s"));
    }, 3000);
    s.on("message", (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.bind(0, from, () => s.send(bytes, port, "127.0.0.1"));
  });
}

/** A query as clients send it, with the name exactly as given (case included); EDNS when udpSize is set. */
function rawQuery(id: number, name: string, type: number, edns?: { udpSize: number; do?: boolean }): Buffer {
  const q = buildQuery(id, name.toLowerCase(), type, 1, edns?.do === true);
  // buildQuery lower-cases nothing, but the name came in lower case: put the client's case back.
  Buffer.from(name.split(".").flatMap((l) => [l.length, ...Buffer.from(l, "latin1")])).copy(q, 12);
  if (edns) {
    q.writeUInt16BE(edns.udpSize, q.length - 8);
    return q;
  }
  // Without EDNS: drop the OPT record buildQuery adds.
  const plain = Buffer.from(q.subarray(0, q.length - 11));
  plain.writeUInt16BE(0, 10);
  return plain;
}

/** Whether answerNow knows this question from this client now (asked without sending anything). */
function known(f: Fast, name: string, type: number = TYPE.A, from = "127.0.0.1"): boolean {
  return f.resolver.answerNow(buildQuery(1, name, type, 1), { address: from, transport: "udp" }) !== undefined;
}

// Everything under fast.test is blocked (block/list.txt) except these.
const ALLOWED = [
  "www.fast.test",
  "later.fast.test",
  "shop.fast.test",
  "printer.fast.test",
  "staff.fast.test",
  "allowed.fast.test",
  "big.fast.test",
  "moving.fast.test",
];

const A_OF = (r: Awaited<ReturnType<typeof dig>>) => r.answers.map((a) => a.split(" ").at(-1));

describe("DNS fast path for known cache hits", () => {
  let content: ContentServer;
  let f: Fast;
  const asked = (name: string) => content.queries.filter((q) => q.name === name).length;

  before(async () => {
    content = await startContentServer({
      "www.fast.test": [{ type: "A", value: "192.0.2.1", ttl: 300 }],
      "ads.fast.test": [{ type: "A", value: "198.51.100.1", ttl: 300 }],
      "later.fast.test": [{ type: "A", value: "192.0.2.2", ttl: 300 }],
      "shop.fast.test": [
        { type: "CNAME", value: "shop.tracker.test", ttl: 300 },
        { type: "A", value: "192.0.2.3", ttl: 300 },
      ],
      "printer.fast.test": [{ type: "A", value: "192.0.2.4", ttl: 300 }],
      "staff.fast.test": [{ type: "A", value: "192.0.2.5", ttl: 300 }],
      "allowed.fast.test": [{ type: "A", value: "192.0.2.6", ttl: 300 }],
      "moving.fast.test": [{ type: "A", value: "192.0.2.7", ttl: 100 }],
      "big.fast.test": Array.from({ length: 40 }, (_, i) => ({ type: "TXT" as const, value: `${"x".repeat(60)}${i}` })),
    });
    f = await start(
      {
        "block/list.txt": "ads.fast.test\nfast.test\n",
        "allow/ok.txt": ALLOWED.join("\n"),
        "firewall.rules": "block to staff.fast.test from 127.0.0.2\n",
        hosts: "",
      },
      { upstreams: [content.label], clients: ["127.0.0.1", "127.0.0.2"] },
    );
  });
  after(async () => {
    await f.close();
    await content.close();
  });

  it("echoes each query's ID and question case, and counts the TTL down", async () => {
    await dig(f.port, ["www.fast.test"]);
    assert.ok(!known(f, "www.fast.test"), "a name asked once is not remembered");
    await dig(f.port, ["www.fast.test"]);
    assert.ok(known(f, "www.fast.test"), "from its third query on, a name is answered ahead of the stages");
    for (const [id, name, advance] of [
      [0x1234, "WWW.fast.TEST", 2000],
      [0xbeef, "wWw.FaSt.TeSt", 5000],
    ] as const) {
      f.clock.advance(advance);
      const reply = await ask(f.port, rawQuery(id, name, TYPE.A));
      assert.equal(reply.readUInt16BE(0), id);
      const question = rawQuery(id, name, TYPE.A).subarray(12);
      assert.deepEqual(reply.subarray(12, 12 + question.length), question, "question bytes as the client sent them");
    }
    const r = await dig(f.port, ["Www.Fast.Test"]);
    assert.equal(r.question, "Www.Fast.Test.");
    assert.deepEqual(r.answers, ["Www.Fast.Test. 293 IN A 192.0.2.1"]);
    f.clock.advance(3000);
    assert.equal(ttlOf((await dig(f.port, ["www.fast.test"])).answers[0]), 290);
    assert.equal(asked("www.fast.test"), 1);
  });

  it("answers EDNS with EDNS and plain with plain, and sets TC where the answer does not fit", async () => {
    await dig(f.port, ["big.fast.test", "TXT", "+tcp"]);
    await dig(f.port, ["big.fast.test", "TXT", "+ignore", "+bufsize=1232"]);
    assert.ok(known(f, "big.fast.test", TYPE.TXT));
    const plain = await ask(f.port, rawQuery(7, "big.fast.test", TYPE.TXT));
    assert.ok(plain.length <= 512);
    assert.ok(plain.readUInt16BE(2) & 0x0200, "TC without EDNS");
    assert.equal(plain.readUInt16BE(10), 0, "no OPT record for a client that sent none");
    const edns = await ask(f.port, rawQuery(8, "big.fast.test", TYPE.TXT, { udpSize: 4096 }));
    assert.ok(edns.readUInt16BE(2) & 0x0200, "TC above 1232 bytes whatever the client offers");
    assert.equal(edns.readUInt16BE(10), 1, "our OPT record");
    const tcp = await dig(f.port, ["big.fast.test", "TXT", "+tcp"]);
    assert.equal(tcp.answers.length, 40);
    const small = await dig(f.port, ["www.fast.test", "+noedns"]);
    assert.doesNotMatch(small.raw, /OPT PSEUDOSECTION/);
    assert.match((await dig(f.port, ["www.fast.test"])).raw, /OPT PSEUDOSECTION/);
  });

  it("keeps a blocked name blocked on every repeat, without asking upstream", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await dig(f.port, ["ads.fast.test"]);
      assert.deepEqual(r.answers, ["ads.fast.test. 60 IN A 0.0.0.0"]);
    }
    assert.equal(asked("ads.fast.test"), 0);
    assert.equal(f.events.filter((e) => e.name === "ads.fast.test" && e.result === "blocked").length, 3);
  });

  it("applies a blocklist edit to a name answered ahead of the stages, and its removal", async () => {
    assert.deepEqual(A_OF(await dig(f.port, ["later.fast.test"])), ["192.0.2.2"]);
    assert.deepEqual(A_OF(await dig(f.port, ["later.fast.test"])), ["192.0.2.2"]);
    assert.ok(known(f, "later.fast.test"));
    writeRule(f.dir, "allow/ok.txt", ALLOWED.filter((n) => n !== "later.fast.test").join("\n"));
    await eventually(
      async () => A_OF(await dig(f.port, ["later.fast.test"]))[0] === "0.0.0.0",
      10_000,
      "later.fast.test blocked",
    );
    assert.ok(!known(f, "later.fast.test"), "a blocked answer is never remembered");
    writeRule(f.dir, "allow/ok.txt", ALLOWED.join("\n"));
    await eventually(
      async () => A_OF(await dig(f.port, ["later.fast.test"]))[0] === "192.0.2.2",
      10_000,
      "later.fast.test answered",
    );
    assert.equal(asked("later.fast.test"), 1, "the cached answer serves again once allowed");
  });

  it("blocks a known name when a rule added later names a target of its CNAME chain", async () => {
    assert.deepEqual(A_OF(await dig(f.port, ["shop.fast.test"])), ["shop.tracker.test.", "192.0.2.3"]);
    assert.deepEqual(A_OF(await dig(f.port, ["shop.fast.test"])), ["shop.tracker.test.", "192.0.2.3"]);
    assert.ok(known(f, "shop.fast.test"));
    writeRule(f.dir, "block/list.txt", "ads.fast.test\nfast.test\ntracker.test\n");
    await eventually(async () => A_OF(await dig(f.port, ["shop.fast.test"]))[0] === "0.0.0.0", 10_000, "shop.fast.test blocked");
    const event = f.events.filter((e) => e.name === "shop.fast.test").at(-1);
    assert.equal(event?.result, "blocked");
    assert.equal(event?.rule?.line, 3);
  });

  it("checks the CNAME chain of an answer refreshed in the background before answering ahead of the stages", async () => {
    assert.deepEqual(A_OF(await dig(f.port, ["moving.fast.test"])), ["192.0.2.7"]);
    assert.deepEqual(A_OF(await dig(f.port, ["moving.fast.test"])), ["192.0.2.7"]);
    assert.ok(known(f, "moving.fast.test"));
    // The name moves behind a CNAME to a blocked name; the prefetch near the end of its TTL fetches that.
    content.records["moving.fast.test"] = [
      { type: "CNAME", value: "ads.fast.test", ttl: 100 },
      { type: "A", value: "198.51.100.1", ttl: 100 },
    ];
    f.clock.advance(95_000);
    assert.deepEqual(A_OF(await dig(f.port, ["moving.fast.test"])), ["192.0.2.7"]);
    await until(() => asked("moving.fast.test") === 2, "the prefetch");
    await eventually(
      async () => A_OF(await dig(f.port, ["moving.fast.test"]))[0] === "0.0.0.0",
      5000,
      "the refreshed answer blocked",
    );
    const last = f.events.filter((e) => e.name === "moving.fast.test").at(-1);
    assert.deepEqual([last?.result, last?.rule?.text], ["blocked", "ads.fast.test"]);
  });

  it("answers from a local record added for a known name", async () => {
    assert.deepEqual(A_OF(await dig(f.port, ["printer.fast.test"])), ["192.0.2.4"]);
    assert.deepEqual(A_OF(await dig(f.port, ["printer.fast.test"])), ["192.0.2.4"]);
    assert.ok(known(f, "printer.fast.test"));
    writeRule(f.dir, "hosts", "192.168.1.10 printer.fast.test\n");
    await eventually(
      async () => A_OF(await dig(f.port, ["printer.fast.test"]))[0] === "192.168.1.10",
      10_000,
      "the local record",
    );
    assert.equal(f.events.filter((e) => e.name === "printer.fast.test").at(-1)?.result, "local");
  });

  it("keeps a firewall rule with `from` per client, whichever client asks first and however often", async () => {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(A_OF(await dig(f.port, ["staff.fast.test"])), ["192.0.2.5"], `127.0.0.1, round ${i}`);
      assert.deepEqual(A_OF(await dig(f.port, ["staff.fast.test", "-b", "127.0.0.2"])), ["0.0.0.0"], `127.0.0.2, round ${i}`);
    }
    assert.ok(known(f, "staff.fast.test", TYPE.A, "127.0.0.1"));
    assert.ok(!known(f, "staff.fast.test", TYPE.A, "127.0.0.2"));
    const blocked = f.events.filter((e) => e.name === "staff.fast.test" && e.client === "127.0.0.2");
    assert.deepEqual(
      blocked.map((e) => [e.result, e.rule?.line]),
      [
        ["blocked", 1],
        ["blocked", 1],
        ["blocked", 1],
      ],
    );
  });

  it("refuses a client outside dns.clients a name another client has cached", async () => {
    await dig(f.port, ["www.fast.test"]);
    const r = await dig(f.port, ["www.fast.test", "-b", "127.0.0.3"]);
    assert.equal(r.status, "REFUSED");
    assert.ok(!known(f, "www.fast.test", TYPE.A, "127.0.0.3"));
  });

  it("logs a known hit as the stages would: result, rule decisions, no upstream", async () => {
    // Forwarded, then cached through the stages, then known: answered ahead of them.
    for (const name of ["allowed.fast.test", "ALLOWED.fast.test"]) await dig(f.port, [name]);
    assert.ok(known(f, "allowed.fast.test"));
    await dig(f.port, ["allowed.FAST.test"]);
    const events = f.events.filter((e) => e.name === "allowed.fast.test");
    assert.equal(events.length, 4);
    const carried = (e: QueryEvent) => [e.result, e.upstream, e.client, e.proto, e.type, e.rcode, e.answer, e.rule, e.decisions];
    assert.deepEqual(carried(events[0] as QueryEvent).slice(0, 7), [
      "forwarded",
      content.label,
      "127.0.0.1",
      "udp",
      TYPE.A,
      0,
      "192.0.2.6",
    ]);
    assert.deepEqual(carried(events[1] as QueryEvent).slice(0, 7), [
      "cached",
      undefined,
      "127.0.0.1",
      "udp",
      TYPE.A,
      0,
      "192.0.2.6",
    ]);
    // The known hits (answerNow itself, then dig's) carry what the stages' cached answer carried,
    // the allow rule that let the name through included.
    assert.deepEqual(carried(events[2] as QueryEvent), carried(events[1] as QueryEvent));
    assert.deepEqual(carried(events[3] as QueryEvent), carried(events[1] as QueryEvent));
    assert.deepEqual(events[1]?.decisions, events[0]?.decisions);
    assert.match(events[3]?.decisions[0]?.rule?.file ?? "", /allow\/ok\.txt$/);
    const lines = f.lines.filter((l) => l.name === "allowed.fast.test");
    assert.deepEqual(
      lines.map((l) => [l.result, l.answer, l.rcode, l.type, l.client, l.proto, l.upstream, l.rule]),
      [
        ["forwarded", "192.0.2.6", "NOERROR", "A", "127.0.0.1", "udp", content.label, undefined],
        ...Array(3).fill(["cached", "192.0.2.6", "NOERROR", "A", "127.0.0.1", "udp", undefined, undefined]),
      ],
    );
  });

  it("answers known hits pipelined on one TCP connection, each with its own ID", async () => {
    await dig(f.port, ["www.fast.test", "+tcp"]);
    const c = new TcpClient(f.port);
    await c.ready;
    c.socket.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => framed(rawQuery(100 + i, "www.fast.test", TYPE.A)))));
    await until(() => c.answers.length === 20, "20 answers");
    assert.deepEqual(
      c.answers.map((a) => a.readUInt16BE(0)).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => 100 + i),
    );
    c.socket.destroy();
  });
});

describe("DNS fast path and firewall time rules", () => {
  it("applies a rule with `at` from the minute it starts to a name known the minute before", async () => {
    const content = await startContentServer({ "timed.fast.test": [{ type: "A", value: "192.0.2.9", ttl: 3600 }] });
    const f = await start({ "firewall.rules": "block to timed.fast.test at 09:00-17:00\n" }, { upstreams: [content.label] });
    // The firewall reads the wall clock (local time); the resolver's TTL clock is the test's own.
    const local = (h: number, m: number, s: number) => new Date(2026, 0, 5, h, m, s).getTime();
    mock.timers.enable({ apis: ["Date"], now: local(8, 59, 30) });
    try {
      for (let i = 0; i < 3; i++) assert.deepEqual(A_OF(await dig(f.port, ["timed.fast.test"])), ["192.0.2.9"]);
      assert.ok(known(f, "timed.fast.test"));
      mock.timers.setTime(local(9, 0, 0));
      assert.ok(!known(f, "timed.fast.test"), "nothing known is kept into the next minute");
      for (let i = 0; i < 3; i++) assert.deepEqual(A_OF(await dig(f.port, ["timed.fast.test"])), ["0.0.0.0"]);
      mock.timers.setTime(local(17, 0, 0));
      for (let i = 0; i < 3; i++) assert.deepEqual(A_OF(await dig(f.port, ["timed.fast.test"])), ["192.0.2.9"]);
      assert.equal(content.queries.filter((q) => q.name === "timed.fast.test").length, 1);
    } finally {
      mock.timers.reset();
      await f.close();
      await content.close();
    }
  });
});

describe("the query log line, written field by field", () => {
  // The form it replaced: JSON.stringify of the fields in this order.
  const reference = (e: QueryEvent) =>
    `${JSON.stringify({
      time: new Date(e.time).toISOString(),
      client: e.client,
      proto: e.proto,
      name: e.name,
      type: ({ 1: "A", 16: "TXT", 28: "AAAA" } as Record<number, string>)[e.type] ?? String(e.type),
      rcode: e.rcode < 0 ? "-" : (({ 0: "NOERROR", 3: "NXDOMAIN" } as Record<number, string>)[e.rcode] ?? String(e.rcode)),
      answer: e.answer,
      result: e.result,
      upstream: e.upstream,
      rule: e.rule ? `${e.rule.file}:${e.rule.line}` : undefined,
      ms: Math.round(e.ms * 100) / 100,
    })}\n`;
  const base: QueryEvent = {
    time: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
    client: "192.168.1.7",
    proto: "udp",
    name: "www.example.test",
    type: 1,
    rcode: 0,
    answer: "192.0.2.1",
    result: "cached",
    decisions: [],
    ms: 0.0449,
  };
  const cases: [string, Partial<QueryEvent>][] = [
    ["a cached answer", {}],
    [
      "a forwarded one, over TCP, from an IPv6 client",
      { upstream: "[2001:db8::53]:53", proto: "tcp", client: "2001:db8::7", result: "forwarded", ms: 12.345 },
    ],
    ["a blocked one with its rule", { result: "blocked", rule: { file: 'rules/block/"odd" \\ name.txt', line: 12, text: "x" } }],
    [
      "a name and an answer with quotes, backslashes and escapes",
      { name: 'a\\.b."q"\\009', type: 16, answer: 'TXT "v=spf1 \\"-all\\"" "\u0001"' },
    ],
    ["a dropped query of an unknown type and rcode", { type: 65_280, rcode: -1, answer: "-", result: "ratelimited" }],
    ["an unknown rcode", { rcode: 9, answer: "NOTAUTH", ms: 1e-7 }],
  ];
  for (const [what, change] of cases) {
    it(`is what JSON.stringify wrote: ${what}`, () => {
      const lines: string[] = [];
      const log = QueryLog.toFunction((l) => lines.push(l));
      const e = { ...base, ...change };
      log.writeEvent(e);
      log.writeEvent({ ...e, time: e.time + 1 });
      assert.deepEqual(lines, [reference(e), reference({ ...e, time: e.time + 1 })]);
    });
  }
});
