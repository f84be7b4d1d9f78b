import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { dig, startResolver, type TestResolver, ttlOf } from "../helpers/dns.js";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { eventually } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";

const bigTxt = Array.from({ length: 40 }, (_, i) => ({ type: "TXT" as const, value: `${"x".repeat(60)}${i}` }));

describe("DNS forwarding and caching", () => {
  let content: ContentServer;
  let dns: TestResolver;
  before(async () => {
    content = await startContentServer({
      "www.example.test": [{ type: "A", value: "192.0.2.1", ttl: 300 }],
      "v6.example.test": [{ type: "AAAA", value: "2001:db8::1", ttl: 300 }],
      "short.example.test": [{ type: "A", value: "192.0.2.9", ttl: 2 }],
      "mail.example.test": [{ type: "MX", value: "mx.example.test", priority: 5 }],
      "big.example.test": bigTxt,
      "once.example.test": [{ type: "A", value: "192.0.2.7", ttl: 300 }],
    });
    dns = await startResolver({ upstreams: [content.label] });
  });
  after(async () => {
    await dns.close();
    await content.close();
  });

  it("forwards a query and answers with the upstream's records", async () => {
    const r = await dig(dns.port, ["www.example.test", "A"]);
    assert.equal(r.status, "NOERROR");
    assert.deepEqual(r.answers, ["www.example.test. 300 IN A 192.0.2.1"]);
    assert.ok(r.flags.includes("ra"));
  });

  it("answers a repeat from the cache, TTL counting down, without asking upstream", async () => {
    await dig(dns.port, ["once.example.test"]);
    const asked = content.queries.filter((q) => q.name === "once.example.test").length;
    await new Promise((r) => setTimeout(r, 1100));
    const r = await dig(dns.port, ["once.example.test"]);
    assert.equal(content.queries.filter((q) => q.name === "once.example.test").length, asked);
    assert.ok(ttlOf(r.answers[0]) < 300 && ttlOf(r.answers[0]) >= 298, r.answers[0]);
  });

  it("echoes the client's own question case (0x20)", async () => {
    const r = await dig(dns.port, ["WwW.ExAmPlE.TeSt"]);
    assert.equal(r.question, "WwW.ExAmPlE.TeSt.");
    assert.match(r.answers[0] ?? "", /^WwW\.ExAmPlE\.TeSt\. \d+ IN A 192\.0\.2\.1$/);
  });

  it("forwards AAAA and MX", async () => {
    assert.deepEqual((await dig(dns.port, ["v6.example.test", "AAAA"])).answers, ["v6.example.test. 300 IN AAAA 2001:db8::1"]);
    assert.deepEqual((await dig(dns.port, ["mail.example.test", "MX"])).answers, [
      "mail.example.test. 300 IN MX 5 mx.example.test.",
    ]);
  });

  it("caches NXDOMAIN for the SOA minimum (RFC 2308)", async () => {
    const first = await dig(dns.port, ["missing.example.test"]);
    assert.equal(first.status, "NXDOMAIN");
    assert.match(first.authority[0] ?? "", /SOA/);
    const asked = content.queries.filter((q) => q.name === "missing.example.test").length;
    const again = await dig(dns.port, ["missing.example.test"]);
    assert.equal(again.status, "NXDOMAIN");
    assert.ok(ttlOf(again.authority[0]) <= 60);
    assert.equal(content.queries.filter((q) => q.name === "missing.example.test").length, asked);
  });

  it("sets TC when an answer does not fit the client's UDP size, and answers in full over TCP", async () => {
    const udp = await dig(dns.port, ["big.example.test", "TXT", "+ignore", "+bufsize=1232"]);
    assert.ok(udp.flags.includes("tc"), udp.raw);
    assert.equal(udp.answers.length, 0);
    const tcp = await dig(dns.port, ["big.example.test", "TXT", "+tcp"]);
    assert.equal(tcp.answers.length, 40);
  });

  it("retries upstream over TCP when the upstream's UDP answer is truncated", async () => {
    await dig(dns.port, ["big.example.test", "TXT", "+tcp"]);
    const qs = content.queries.filter((q) => q.name === "big.example.test");
    assert.ok(
      qs.some((q) => q.tcp),
      JSON.stringify(qs),
    );
  });

  it("answers without EDNS to a client that sent none, within 512 bytes", async () => {
    const r = await dig(dns.port, ["big.example.test", "TXT", "+noedns", "+ignore"]);
    assert.ok(r.flags.includes("tc"));
    assert.doesNotMatch(r.raw, /OPT PSEUDOSECTION/);
  });

  it("answers an unknown EDNS version with BADVERS (RFC 6891)", async () => {
    const r = await dig(dns.port, ["www.example.test", "+edns=1", "+noednsnegotiation"]);
    assert.equal(r.status, "BADVERS");
  });

  it("refuses CHAOS-class queries instead of forwarding them", async () => {
    const before = content.queries.length;
    assert.equal((await dig(dns.port, ["version.bind", "TXT", "CH"])).status, "REFUSED");
    assert.equal(content.queries.length, before);
  });

  it("answers a zone transfer request with NOTIMP", async () => {
    const { stdout } = await promisify(execFile)("dig", [
      "@127.0.0.1",
      "-p",
      String(dns.port),
      "example.test",
      "AXFR",
      "+tries=1",
      "+time=2",
    ]);
    assert.match(stdout, /NOTIMP|Transfer failed/);
  });

  it("answers ANY minimally (RFC 8482)", async () => {
    const r = await dig(dns.port, ["www.example.test", "ANY"]);
    assert.deepEqual(r.answers, ['www.example.test. 3600 IN HINFO "RFC8482" ""']);
  });

  it("writes a JSON query log line with the answer and how it was answered", async () => {
    await dig(dns.port, ["www.example.test"]);
    const line = dns.queryLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.name === "www.example.test" && l.result === "cached");
    assert.ok(line);
    assert.equal(line.answer, "192.0.2.1");
    assert.equal(line.client, "127.0.0.1");
    assert.equal(line.type, "A");
  });
});

describe("DNS upstream failures", () => {
  it("fails over to the next upstream on SERVFAIL and on silence", async () => {
    const bad = await startContentServer({});
    bad.mode = "servfail";
    const silent = await startContentServer({});
    silent.mode = "silent";
    const good = await startContentServer({ "x.example.test": [{ type: "A", value: "192.0.2.5" }] });
    const dns = await startResolver({ upstreams: [bad.label, silent.label, good.label], timeout: "300ms" });
    try {
      const r = await dig(dns.port, ["x.example.test"]);
      assert.deepEqual(r.answers, ["x.example.test. 300 IN A 192.0.2.5"]);
      assert.equal(bad.queries.length, 1);
      assert.equal(silent.queries.length, 1);
    } finally {
      await dns.close();
      await Promise.all([bad.close(), silent.close(), good.close()]);
    }
  });

  it("serves a stale answer when every upstream fails (RFC 8767), with a 30 s TTL", async () => {
    const up = await startContentServer({ "stale.example.test": [{ type: "A", value: "192.0.2.8", ttl: 1 }] });
    const dns = await startResolver({ upstreams: [up.label], timeout: "300ms" });
    try {
      await dig(dns.port, ["stale.example.test"]);
      up.mode = "silent";
      await new Promise((r) => setTimeout(r, 1200));
      const r = await dig(dns.port, ["stale.example.test"]);
      assert.deepEqual(r.answers, ["stale.example.test. 30 IN A 192.0.2.8"]);
    } finally {
      await dns.close();
      await up.close();
    }
  });

  it("answers SERVFAIL when every upstream fails and nothing is cached", async () => {
    const up = await startContentServer({});
    up.mode = "servfail";
    const dns = await startResolver({ upstreams: [up.label] });
    try {
      assert.equal((await dig(dns.port, ["nothing.example.test"])).status, "SERVFAIL");
    } finally {
      await dns.close();
      await up.close();
    }
  });

  it("forwards a domain to its conditional upstream (dns.forward)", async () => {
    const general = await startContentServer({ "host.corp.test": [{ type: "A", value: "203.0.113.1" }] });
    const corp = await startContentServer({ "host.corp.test": [{ type: "A", value: "10.9.9.9" }] });
    const dns = await startResolver({ upstreams: [general.label], forward: { "corp.test": [corp.label] } });
    try {
      assert.deepEqual((await dig(dns.port, ["host.corp.test", "+short"])).raw.trim(), "10.9.9.9");
      assert.equal(general.queries.length, 0);
    } finally {
      await dns.close();
      await Promise.all([general.close(), corp.close()]);
    }
  });

  it("prefetches a popular name shortly before it expires", async () => {
    const up = await startContentServer({ "hot.example.test": [{ type: "A", value: "192.0.2.3", ttl: 10 }] });
    const dns = await startResolver({ upstreams: [up.label] });
    try {
      await dig(dns.port, ["hot.example.test"]);
      await dig(dns.port, ["hot.example.test"]);
      const asked = up.queries.length;
      // 10 s TTL: inside its last second, a hit triggers a background refresh.
      await new Promise((r) => setTimeout(r, 9200));
      await dig(dns.port, ["hot.example.test"]);
      await eventually(() => up.queries.length > asked, 2000, "prefetch query");
    } finally {
      await dns.close();
      await up.close();
    }
  });
});

describe("DNS local records and blocking", () => {
  let content: ContentServer;
  let dns: TestResolver;
  before(async () => {
    content = await startContentServer({
      "ads.example.test": [{ type: "A", value: "198.51.100.1" }],
      "shop.example.test": [
        { type: "CNAME", value: "shop.tracker.test" },
        { type: "A", value: "198.51.100.2" },
      ],
      "printer.office.lan": [{ type: "A", value: "198.51.100.3" }],
    });
    const dir = rulesDir({
      hosts: "192.168.1.10 printer.office.lan printer\n2001:db8::10 nas.office.lan\n",
      "zones/office.lan.zone": [
        "$TTL 300",
        "@ IN SOA ns.office.lan. admin.office.lan. ( 1 3600 600 86400 120 )",
        "  IN MX 10 mail",
        "mail IN A 192.168.1.20",
        "www IN CNAME mail",
        "_imap._tcp IN SRV 0 5 143 mail",
        'info IN TXT "office server"',
        "deep.sub IN A 192.168.1.30",
      ].join("\n"),
      "block/list.txt": "ads.example.test\ntracker.test\nprinter.office.lan\n",
    });
    dns = await startResolver({ upstreams: [content.label] }, { rules: dir });
  });
  after(async () => {
    await dns.close();
    await content.close();
  });

  const table: [name: string, args: string[], check: (r: Awaited<ReturnType<typeof dig>>) => void][] = [
    [
      "a hosts name, even one a blocklist names (local comes first)",
      ["printer.office.lan"],
      (r) => {
        assert.deepEqual(r.answers, ["printer.office.lan. 60 IN A 192.168.1.10"]);
        assert.ok(r.flags.includes("aa"));
      },
    ],
    [
      "a PTR made from a hosts line",
      ["-x", "192.168.1.10"],
      (r) => assert.deepEqual(r.answers, ["10.1.168.192.in-addr.arpa. 60 IN PTR printer.office.lan."]),
    ],
    [
      "an AAAA from the hosts file",
      ["nas.office.lan", "AAAA"],
      (r) => assert.deepEqual(r.answers, ["nas.office.lan. 60 IN AAAA 2001:db8::10"]),
    ],
    ["the zone's MX", ["office.lan", "MX"], (r) => assert.deepEqual(r.answers, ["office.lan. 300 IN MX 10 mail.office.lan."])],
    [
      "a CNAME followed inside the zone",
      ["www.office.lan"],
      (r) =>
        assert.deepEqual(r.answers, ["www.office.lan. 300 IN CNAME mail.office.lan.", "mail.office.lan. 300 IN A 192.168.1.20"]),
    ],
    [
      "an SRV record",
      ["_imap._tcp.office.lan", "SRV"],
      (r) => assert.deepEqual(r.answers, ["_imap._tcp.office.lan. 300 IN SRV 0 5 143 mail.office.lan."]),
    ],
    [
      "a TXT record",
      ["info.office.lan", "TXT"],
      (r) => assert.deepEqual(r.answers, ['info.office.lan. 300 IN TXT "office server"']),
    ],
    [
      "NXDOMAIN with the zone's SOA for a missing name",
      ["nobody.office.lan"],
      (r) => {
        assert.equal(r.status, "NXDOMAIN");
        assert.ok(r.flags.includes("aa"));
        assert.match(
          r.authority[0] ?? "",
          /^office\.lan\. 120 IN SOA ns\.office\.lan\. admin\.office\.lan\. 1 3600 600 86400 120$/,
        );
      },
    ],
    [
      "NODATA for a missing type",
      ["mail.office.lan", "AAAA"],
      (r) => {
        assert.equal(r.status, "NOERROR");
        assert.equal(r.answers.length, 0);
        assert.match(r.authority[0] ?? "", /SOA/);
      },
    ],
    ["NODATA for an empty non-terminal", ["sub.office.lan"], (r) => assert.equal(r.status, "NOERROR")],
    [
      "0.0.0.0 for a blocked name",
      ["ads.example.test"],
      (r) => assert.deepEqual(r.answers, ["ads.example.test. 60 IN A 0.0.0.0"]),
    ],
    [
      ":: for a blocked name's AAAA",
      ["ads.example.test", "AAAA"],
      (r) => assert.deepEqual(r.answers, ["ads.example.test. 60 IN AAAA ::"]),
    ],
    [
      "a name whose CNAME chain reaches a blocked name",
      ["shop.example.test"],
      (r) => assert.deepEqual(r.answers, ["shop.example.test. 60 IN A 0.0.0.0"]),
    ],
  ];
  for (const [name, args, check] of table) it(`answers ${name}`, async () => check(await dig(dns.port, args)));

  for (const [args, expected] of [
    [["localhost"], "localhost. 3600 IN A 127.0.0.1"],
    [["app.localhost", "AAAA"], "app.localhost. 3600 IN AAAA ::1"],
  ] as const) {
    it(`answers ${args.join(" ")} itself (RFC 6761)`, async () =>
      assert.deepEqual((await dig(dns.port, [...args])).answers, [expected]));
  }

  it("answers NXDOMAIN for .invalid and for private reverse lookups, without asking upstream", async () => {
    const before = content.queries.length;
    assert.equal((await dig(dns.port, ["x.invalid"])).status, "NXDOMAIN");
    assert.equal((await dig(dns.port, ["-x", "10.1.2.3"])).status, "NXDOMAIN");
    assert.equal((await dig(dns.port, ["-x", "192.168.9.9"])).status, "NXDOMAIN");
    assert.equal(content.queries.length, before);
  });

  it("never asked the upstream for local names", () => {
    assert.equal(content.queries.filter((q) => q.name.endsWith("office.lan")).length, 0);
  });

  it("logs the blocking rule with its file and line", () => {
    const line = dns.queryLines.map((l) => JSON.parse(l) as Record<string, string>).find((l) => l.name === "ads.example.test");
    assert.match(line?.rule ?? "", /block\/list\.txt:1$/);
    assert.equal(line?.result, "blocked");
  });
});

describe("DNS block modes", () => {
  for (const [mode, expect] of [
    ["nxdomain", (r: Awaited<ReturnType<typeof dig>>) => assert.equal(r.status, "NXDOMAIN")],
    ["refused", (r: Awaited<ReturnType<typeof dig>>) => assert.equal(r.status, "REFUSED")],
    ["address", (r: Awaited<ReturnType<typeof dig>>) => assert.deepEqual(r.answers, ["ads.example.test. 60 IN A 192.168.1.1"])],
  ] as const) {
    it(`blockMode ${mode}`, async () => {
      const dns = await startResolver(
        { upstreams: ["127.0.0.1:9"], blockMode: mode, blockAddress: ["192.168.1.1"] },
        { rules: rulesDir({ "block/l.txt": "ads.example.test\n" }) },
      );
      try {
        expect(await dig(dns.port, ["ads.example.test"]));
      } finally {
        await dns.close();
      }
    });
  }
});

describe("DNS: who may ask, and hostile input", () => {
  let content: ContentServer;
  let dns: TestResolver;
  before(async () => {
    content = await startContentServer({ "ok.example.test": [{ type: "A", value: "192.0.2.44" }] });
    dns = await startResolver({ upstreams: [content.label], tcpIdleTimeout: "300ms" });
  });
  after(async () => {
    await dns.close();
    await content.close();
  });

  it("refuses clients outside dns.clients", async () => {
    const closed = await startResolver({ upstreams: [content.label], clients: ["10.0.0.0/8"] });
    try {
      assert.equal((await dig(closed.port, ["ok.example.test"])).status, "REFUSED");
    } finally {
      await closed.close();
    }
  });

  const sendUdp = (bytes: Buffer, waitMs = 300): Promise<Buffer | null> =>
    new Promise((resolve) => {
      const s = createSocket("udp4");
      const timer = setTimeout(() => {
        s.close();
        resolve(null);
      }, waitMs);
      s.on("message", (m) => {
        clearTimeout(timer);
        s.close();
        resolve(m);
      });
      s.send(bytes, dns.port, "127.0.0.1");
    });

  const header = (flags: number, qd: number, an = 0) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(0x1234, 0);
    h.writeUInt16BE(flags, 2);
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    return h;
  };
  const q = (name: Buffer) => Buffer.concat([header(0x0100, 1), name, Buffer.from([0, 1, 0, 1])]);

  const malformed: [name: string, bytes: Buffer, expect: "drop" | "FORMERR" | "NOTIMP"][] = [
    ["a truncated header", Buffer.from([0x12, 0x34, 0x01]), "drop"],
    ["QR set in a query", Buffer.concat([header(0x8100, 1), Buffer.from([0, 0, 1, 0, 1])]), "drop"],
    ["a label longer than the packet", q(Buffer.from([40, 97, 98])), "FORMERR"],
    ["a compression pointer loop", q(Buffer.from([0xc0, 12])), "FORMERR"],
    ["a pointer pointing forward", q(Buffer.from([0xc0, 200])), "FORMERR"],
    ["two questions", Buffer.concat([header(0x0100, 2), Buffer.from([0, 0, 1, 0, 1, 0, 0, 1, 0, 1])]), "FORMERR"],
    [
      "a count claiming answers that are not there",
      Buffer.concat([header(0x0100, 1, 3), Buffer.from([0, 0, 1, 0, 1])]),
      "FORMERR",
    ],
    ["an unknown opcode", Buffer.concat([header(0x2900, 1), Buffer.from([0, 0, 1, 0, 1])]), "NOTIMP"],
    ["a bad label type", q(Buffer.from([0x80, 1, 0])), "FORMERR"],
  ];
  for (const [name, bytes, expect] of malformed) {
    it(`${expect === "drop" ? "drops" : `answers ${expect} to`} ${name}, and keeps serving`, async () => {
      const reply = await sendUdp(bytes);
      if (expect === "drop") assert.equal(reply, null);
      else {
        assert.ok(reply);
        assert.equal(reply.readUInt16BE(0), 0x1234);
        assert.equal(reply.readUInt16BE(2) & 0xf, expect === "FORMERR" ? 1 : 4);
      }
      assert.deepEqual((await dig(dns.port, ["ok.example.test", "+short"])).raw.trim(), "192.0.2.44");
    });
  }

  it("answers several queries pipelined on one TCP connection (RFC 7766)", async () => {
    const query = (id: number) => {
      const name = Buffer.from([2, 111, 107, 7, 101, 120, 97, 109, 112, 108, 101, 4, 116, 101, 115, 116, 0]);
      const body = Buffer.concat([header(0x0100, 1), name, Buffer.from([0, 1, 0, 1])]);
      body.writeUInt16BE(id, 0);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(body.length, 0);
      return Buffer.concat([len, body]);
    };
    const ids = await new Promise<number[]>((resolve) => {
      const s = connect(dns.port, "127.0.0.1", () => s.write(Buffer.concat([query(1), query(2), query(3)])));
      let buf = Buffer.alloc(0);
      const got: number[] = [];
      s.on("data", (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          got.push(buf.readUInt16BE(2));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (got.length === 3) {
          s.destroy();
          resolve(got);
        }
      });
    });
    assert.deepEqual(ids.sort(), [1, 2, 3]);
  });

  for (const [name, bytes] of [
    ["a length prefix too short for a header", Buffer.from([0, 5, 1, 2, 3, 4, 5])],
    ["a length prefix longer than what follows, then silence", Buffer.from([0x10, 0, 1, 2, 3])],
  ] as const) {
    it(`closes a TCP connection with ${name}`, async () => {
      const closed = await new Promise<boolean>((resolve) => {
        const s = connect(dns.port, "127.0.0.1", () => s.write(bytes));
        const timer = setTimeout(() => resolve(false), 3000);
        s.on("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
        s.on("error", () => {});
      });
      assert.equal(closed, true);
    });
  }

  it("drops a client that floods past dns.rateLimit", async () => {
    const limited = await startResolver({ upstreams: [content.label], rateLimit: 5 });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, () => dig(limited.port, ["ok.example.test", "+time=1"]).catch(() => undefined)),
      );
      const answered = results.filter((r) => r?.status === "NOERROR").length;
      assert.ok(answered <= 6 && answered >= 1, `answered ${answered}`);
    } finally {
      await limited.close();
    }
  });
});

describe("the proxy resolves names through the DNS pipeline", () => {
  it("reaches an origin named in rules/hosts, and refuses a name blocked through its CNAME", async () => {
    const { startOrigin } = await import("../helpers/origin.js");
    const { startProxy, viaProxy } = await import("../helpers/proxy.js");
    const origin = await startOrigin((_q, s) => s.end("office intranet"));
    const content = await startContentServer({
      "cdn.example.test": [
        { type: "CNAME", value: "evil.tracker.test" },
        { type: "A", value: "127.0.0.1" },
      ],
    });
    const dir = rulesDir({ hosts: "127.0.0.1 intranet.office.lan\n", "block/t.txt": "tracker.test\n" });
    const proxy = await startProxy({ rules: dir, listsDir: `${dir}/lists`, dns: { upstreams: [content.label] } });
    try {
      const ok = await viaProxy(proxy.port, `http://intranet.office.lan:${origin.port}/`);
      assert.equal(ok.body.toString(), "office intranet");
      const blocked = await viaProxy(proxy.port, `http://cdn.example.test:${origin.port}/`);
      assert.equal(blocked.status, 403);
      assert.match(blocked.body.toString(), /blocked by the office's DNS rules/);
    } finally {
      await proxy.close();
      await origin.close();
      await content.close();
    }
  });
});
