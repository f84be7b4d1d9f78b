import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { DnsBlockedError, resolverLookup } from "../../src/dns/lookup.js";
import { dig, framed, query, startResolver, TcpClient, type TestResolver, ttlOf, udpExchange, until } from "../helpers/dns.js";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { rulesDir } from "../helpers/rules.js";

const bigTxt = Array.from({ length: 40 }, (_, i) => ({ type: "TXT" as const, value: `${"x".repeat(60)}${i}` }));
const asked = (content: ContentServer, name: string) => content.queries.filter((q) => q.name === name).length;
type Dig = Awaited<ReturnType<typeof dig>>;

describe("DNS forwarding and caching", () => {
  let content: ContentServer;
  let dns: TestResolver;
  before(async () => {
    content = await startContentServer({
      "www.example.test": [{ type: "A", value: "192.0.2.1", ttl: 300 }],
      "v6.example.test": [{ type: "AAAA", value: "2001:db8::1", ttl: 300 }],
      "mail.example.test": [{ type: "MX", value: "mx.example.test", priority: 5 }],
      "big.example.test": bigTxt,
      "bigtcp.example.test": bigTxt,
      "once.example.test": [{ type: "A", value: "192.0.2.7", ttl: 300 }],
      "logged.example.test": [{ type: "A", value: "192.0.2.8", ttl: 300 }],
      "mx-logged.example.test": [{ type: "MX", value: "mail.example.test", priority: 10 }],
      "txt-logged.example.test": [{ type: "TXT", value: "v=spf1 -all" }],
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
    const before = asked(content, "once.example.test");
    dns.clock.advance(2000);
    const r = await dig(dns.port, ["once.example.test"]);
    assert.equal(asked(content, "once.example.test"), before);
    assert.equal(ttlOf(r.answers[0]), 298, r.answers[0]);
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
    const before = asked(content, "missing.example.test");
    const again = await dig(dns.port, ["missing.example.test"]);
    assert.equal(again.status, "NXDOMAIN");
    assert.ok(ttlOf(again.authority[0]) <= 60);
    assert.equal(asked(content, "missing.example.test"), before);
  });

  it("sets TC when an answer does not fit the client's UDP size, and answers in full over TCP", async () => {
    const udp = await dig(dns.port, ["big.example.test", "TXT", "+ignore", "+bufsize=1232"]);
    assert.ok(udp.flags.includes("tc"), udp.raw);
    assert.equal(udp.answers.length, 0);
    const tcp = await dig(dns.port, ["big.example.test", "TXT", "+tcp"]);
    assert.equal(tcp.answers.length, 40);
  });

  it("retries upstream over TCP when the upstream's UDP answer is truncated", async () => {
    await dig(dns.port, ["bigtcp.example.test", "TXT", "+ignore"]);
    const qs = content.queries.filter((q) => q.name === "bigtcp.example.test");
    assert.deepEqual(
      qs.map((q) => q.tcp),
      [false, true],
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
    await dig(dns.port, ["logged.example.test"]);
    await dig(dns.port, ["logged.example.test"]);
    const lines = dns.queryLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.name === "logged.example.test");
    assert.deepEqual(
      lines.map((l) => [l.result, l.answer, l.rcode, l.type, l.client, l.proto, l.upstream]),
      [
        ["forwarded", "192.0.2.8", "NOERROR", "A", "127.0.0.1", "udp", content.label],
        ["cached", "192.0.2.8", "NOERROR", "A", "127.0.0.1", "udp", undefined],
      ],
    );
  });

  for (const [name, type, expected] of [
    ["mx-logged.example.test", "MX", "MX 10 mail.example.test"],
    ["txt-logged.example.test", "TXT", 'TXT "v=spf1 -all"'],
    ["10.0.0.192.in-addr.arpa", "PTR", "NXDOMAIN"],
  ] as const) {
    it(`logs the data of a ${type} answer, not only its rcode`, async () => {
      const event = dns.nextQuery((e) => e.name === name);
      await dig(dns.port, [name, type]);
      await event;
      const line = dns.queryLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.name === name);
      assert.equal(line?.answer, expected);
    });
  }

  it("emits exactly one query event per client query, and none for the proxy's own lookups", async () => {
    const seen: string[] = [];
    const off = dns.events.query.subscribe((e) => seen.push(`${e.name}/${e.proto}`));
    try {
      await dig(dns.port, ["www.example.test"]);
      await dig(dns.port, ["www.example.test", "+tcp"]);
      await dns.resolver.resolve("www.example.test", 1);
      assert.deepEqual(seen, ["www.example.test/udp", "www.example.test/tcp"]);
    } finally {
      off();
    }
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
      dns.clock.advance(1200);
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
      const before = up.queries.length;
      // 10 s TTL: inside its last second, a hit triggers a background refresh.
      dns.clock.advance(9200);
      await dig(dns.port, ["hot.example.test"]);
      await dns.resolver.tasks.settle();
      assert.equal(up.queries.length, before + 1);
    } finally {
      await dns.close();
      await up.close();
    }
  });

  for (const mode of ["servfail", "silent"] as const) {
    it(`logs a prefetch that fails (every upstream ${mode}) and keeps answering`, async () => {
      const up = await startContentServer({ "hot.example.test": [{ type: "A", value: "192.0.2.3", ttl: 10 }] });
      const dns = await startResolver({ upstreams: [up.label], timeout: "200ms" });
      try {
        await dig(dns.port, ["hot.example.test"]);
        await dig(dns.port, ["hot.example.test"]);
        up.mode = mode;
        dns.clock.advance(9200);
        await dig(dns.port, ["hot.example.test"]);
        await dns.resolver.tasks.settle();
        assert.equal(dns.resolver.tasks.failureCount, 1);
        assert.ok(
          dns.logLines.some((l) => /dns: prefetch hot\.example\.test A failed: every upstream failed/.test(l.msg)),
          JSON.stringify(dns.logLines),
        );
        // Still answering: from the cache while fresh, then stale once expired.
        assert.deepEqual((await dig(dns.port, ["hot.example.test", "+short"])).raw.trim(), "192.0.2.3");
        dns.clock.advance(2000);
        assert.deepEqual((await dig(dns.port, ["hot.example.test"])).answers, ["hot.example.test. 30 IN A 192.0.2.3"]);
      } finally {
        await dns.close();
        await up.close();
      }
    });
  }

  it("fails over at once from an upstream port that answers ICMP port unreachable", async () => {
    const good = await startContentServer({ "icmp.example.test": [{ type: "A", value: "192.0.2.11" }] });
    // Port 9 (discard) on loopback has no listener: the kernel answers port unreachable. With a 60 s
    // timeout, only the ICMP error can get the answer out before dig gives up.
    const dns = await startResolver({ upstreams: ["127.0.0.1:9", good.label], timeout: "60s" });
    try {
      const r = await dig(dns.port, ["icmp.example.test"]);
      assert.deepEqual(r.answers, ["icmp.example.test. 300 IN A 192.0.2.11"]);
    } finally {
      await dns.close();
      await good.close();
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
        "loop1 IN CNAME loop2",
        "loop2 IN CNAME loop1",
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

  const table: [name: string, args: string[], check: (r: Dig) => void][] = [
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
    ["SERVFAIL for a CNAME loop inside the zone", ["loop1.office.lan"], (r) => assert.equal(r.status, "SERVFAIL")],
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

  it("never asks the upstream for local names", async () => {
    for (const name of ["printer.office.lan", "www.office.lan", "nobody.office.lan"]) await dig(dns.port, [name]);
    assert.equal(content.queries.filter((q) => q.name.endsWith("office.lan")).length, 0);
  });

  it("logs the blocking rule with its file and line", async () => {
    const event = dns.nextQuery((e) => e.name === "ads.example.test" && e.type === 1);
    await dig(dns.port, ["ads.example.test"]);
    assert.equal((await event).result, "blocked");
    const line = dns.queryLines.map((l) => JSON.parse(l) as Record<string, string>).find((l) => l.name === "ads.example.test");
    assert.match(line?.rule ?? "", /block\/list\.txt:1$/);
    assert.equal(line?.result, "blocked");
  });
});

describe("DNS block modes: the answer on the wire, and the decision as a value", () => {
  const modes = [
    ["zero", (r: Dig) => assert.deepEqual(r.answers, ["shop.example.test. 60 IN A 0.0.0.0"]), 0],
    ["nxdomain", (r: Dig) => assert.equal(r.status, "NXDOMAIN"), 3],
    ["refused", (r: Dig) => assert.equal(r.status, "REFUSED"), 5],
    ["address", (r: Dig) => assert.deepEqual(r.answers, ["shop.example.test. 60 IN A 192.168.1.1"]), 0],
  ] as const;
  for (const [mode, expectWire, rcode] of modes) {
    for (const [how, name, blockedName, stage, line] of [
      ["by name", "ads.example.test", "ads.example.test", "blocklist", 1],
      ["through its CNAME", "shop.example.test", "shop.tracker.test", "cname", 2],
    ] as const) {
      it(`blockMode ${mode}, blocked ${how}: the client's answer, resolve() and the proxy's lookup all say which rule`, async () => {
        const content = await startContentServer({
          "shop.example.test": [
            { type: "CNAME", value: "shop.tracker.test" },
            { type: "A", value: "198.51.100.2" },
          ],
        });
        const dns = await startResolver(
          { upstreams: [content.label], blockMode: mode, blockAddress: ["192.168.1.1"] },
          { rules: rulesDir({ "block/l.txt": "ads.example.test\ntracker.test\n" }) },
        );
        try {
          if (name === "shop.example.test") expectWire(await dig(dns.port, [name]));
          const r = await dns.resolver.resolve(name, 1, { address: "192.168.1.7" });
          assert.equal(r.result, "blocked");
          assert.equal(r.rcode, rcode);
          assert.equal(r.blocked?.name, blockedName);
          assert.equal(r.blocked?.stage, stage);
          assert.equal(r.blocked?.rule?.line, line);
          assert.match(r.blocked?.rule?.file ?? "", /block\/l\.txt$/);
          const err = await new Promise<unknown>((resolve) =>
            resolverLookup(() => dns.resolver)(name, { all: true }, (e) => resolve(e)),
          );
          assert.ok(err instanceof DnsBlockedError);
          assert.equal(err.code, "GH_DNS_BLOCKED");
          assert.deepEqual([err.hostname, err.blockedName, err.stage, err.rule?.line], [name, blockedName, stage, line]);
        } finally {
          await dns.close();
          await content.close();
        }
      });
    }
  }
});

describe("DnsResolver.resolve and explain", () => {
  let content: ContentServer;
  let dns: TestResolver;
  before(async () => {
    content = await startContentServer({
      "site.example.test": [
        { type: "CNAME", value: "cdn.example.test" },
        { type: "A", value: "198.51.100.9" },
      ],
      "tracked.example.test": [
        { type: "CNAME", value: "t.tracker.test" },
        { type: "A", value: "198.51.100.10" },
      ],
      "fresh.example.test": [{ type: "A", value: "198.51.100.11" }],
    });
    dns = await startResolver(
      { upstreams: [content.label], clients: ["127.0.0.0/8", "192.168.1.0/24"] },
      {
        rules: rulesDir({
          hosts: "192.168.1.10 printer.office.lan\n",
          "block/l.txt": "printer.office.lan\ntracker.test\nads.example.test\n",
          "allow/a.txt": "ok.ads.example.test\n",
          "firewall.rules": "block from 192.168.1.66 to games.example.test\n",
        }),
      },
    );
  });
  after(async () => {
    await dns.close();
    await content.close();
  });

  it("resolve returns addresses, the CNAME chain and the upstream, without a wire round trip", async () => {
    const r = await dns.resolver.resolve("Site.Example.Test.", 1);
    assert.deepEqual(
      { rcode: r.rcode, result: r.result, cnames: r.cnames, addresses: r.addresses, upstream: r.upstream, blocked: r.blocked },
      {
        rcode: 0,
        result: "forwarded",
        cnames: ["cdn.example.test"],
        addresses: [{ address: "198.51.100.9", family: 4, ttl: 300 }],
        upstream: content.label,
        blocked: undefined,
      },
    );
  });

  it("resolve answers a name that is not a DNS name with FORMERR, asking nobody", async () => {
    const before = content.queries.length;
    const r = await dns.resolver.resolve(`${"a".repeat(64)}.example.test`, 1);
    assert.equal(r.rcode, 1);
    assert.equal(content.queries.length, before);
  });

  const cases: [
    what: string,
    name: string,
    client: string | undefined,
    check: (e: Awaited<ReturnType<TestResolver["resolver"]["explain"]>>) => void,
  ][] = [
    [
      "a local record beats a blocklist entry",
      "printer.office.lan",
      undefined,
      (e) => {
        assert.equal(e.result, "local");
        assert.deepEqual(
          e.addresses.map((a) => a.address),
          ["192.168.1.10"],
        );
        assert.equal(e.decisions[0]?.stage, "local");
        assert.match(e.decisions[0]?.rule?.file ?? "", /hosts$/);
      },
    ],
    [
      "dns.clients applies to the client given",
      "fresh.example.test",
      "10.1.2.3",
      (e) => {
        assert.equal(e.result, "refused");
        assert.equal(e.decisions[0]?.stage, "acl");
      },
    ],
    [
      "firewall rules with from apply to the client given",
      "games.example.test",
      "192.168.1.66",
      (e) => {
        assert.equal(e.result, "blocked");
        assert.equal(e.blocked?.stage, "firewall");
      },
    ],
    [
      "an allow entry is a decision with its rule",
      "ok.ads.example.test",
      undefined,
      (e) => {
        assert.equal(e.result, "forwarded");
        assert.equal(e.decisions[0]?.action, "allow");
        assert.match(e.decisions[0]?.rule?.file ?? "", /allow\/a\.txt$/);
      },
    ],
    [
      "special names are answered here",
      "x.invalid",
      undefined,
      (e) => {
        assert.equal(e.result, "local");
        assert.equal(e.rcode, 3);
      },
    ],
    [
      "a name nobody answers would be forwarded, and says where",
      "never-asked.example.test",
      undefined,
      (e) => {
        assert.equal(e.result, "forwarded");
        assert.equal(e.rcode, undefined);
        assert.deepEqual(e.upstreams, [content.label]);
      },
    ],
  ];
  for (const [what, name, client, check] of cases) {
    it(`explain: ${what}`, async () => {
      const before = content.queries.length;
      check(await dns.resolver.explain(name, 1, client));
      assert.equal(content.queries.length, before, "explain never asks upstream");
    });
  }

  it("explain checks the CNAME chain of a cached answer against the rules in force", async () => {
    await dig(dns.port, ["tracked.example.test"]);
    const e = await dns.resolver.explain("tracked.example.test", 1);
    assert.equal(e.result, "blocked");
    assert.deepEqual([e.blocked?.name, e.blocked?.stage], ["t.tracker.test", "cname"]);
  });

  it("explain reads the cache without counting a hit or starting a prefetch", async () => {
    await dig(dns.port, ["fresh.example.test"]);
    const before = content.queries.length;
    dns.clock.advance(295_000);
    for (let i = 0; i < 3; i++) assert.equal((await dns.resolver.explain("fresh.example.test", 1)).result, "cached");
    await dns.resolver.tasks.settle();
    assert.equal(content.queries.length, before);
  });
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
  const stillServing = async () =>
    assert.deepEqual((await dig(dns.port, ["ok.example.test", "+short"])).raw.trim(), "192.0.2.44");

  it("refuses clients outside dns.clients", async () => {
    const closed = await startResolver({ upstreams: [content.label], clients: ["10.0.0.0/8"] });
    try {
      assert.equal((await dig(closed.port, ["ok.example.test"])).status, "REFUSED");
    } finally {
      await closed.close();
    }
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
      const reply = await udpExchange(dns.port, bytes);
      if (expect === "drop") assert.equal(reply, null);
      else {
        assert.ok(reply);
        assert.equal(reply.readUInt16BE(0), 0x1234);
        assert.equal(reply.readUInt16BE(2) & 0xf, expect === "FORMERR" ? 1 : 4);
      }
      await stillServing();
    });
  }

  it("answers several queries pipelined on one TCP connection (RFC 7766)", async () => {
    const c = new TcpClient(dns.port);
    await c.ready;
    c.socket.write(Buffer.concat([1, 2, 3].map((id) => framed(query(id, "ok.example.test")))));
    await until(() => c.answers.length === 3, "three answers");
    c.socket.destroy();
    assert.deepEqual(c.answers.map((a) => a.readUInt16BE(0)).sort(), [1, 2, 3]);
  });

  for (const [name, bytes] of [
    ["a length prefix too short for a header", Buffer.from([0, 5, 1, 2, 3, 4, 5])],
    ["a length prefix longer than what follows, then silence", Buffer.from([0x10, 0, 1, 2, 3])],
  ] as const) {
    it(`closes a TCP connection with ${name}`, async () => {
      const c = new TcpClient(dns.port);
      await c.ready;
      c.socket.write(bytes);
      await until(() => c.closed, "the server closing the connection");
      await stillServing();
    });
  }
});

describe("DNS rate limit", () => {
  it("answers 1 in rateLimitSlip of a flooding client's excess with TC and drops the rest, logging once a minute", async () => {
    const content = await startContentServer({ "ok.example.test": [{ type: "A", value: "192.0.2.44" }] });
    const dns = await startResolver({ upstreams: [content.label], rateLimit: 5, rateLimitSlip: 2 });
    try {
      // The test clock does not move: the bucket holds 5 tokens and never refills.
      const replies = [];
      for (let id = 0; id < 20; id++) replies.push(await udpExchange(dns.port, query(id, "ok.example.test"), 100));
      const kinds = replies.map((r) => (r === null ? "dropped" : r.readUInt16BE(2) & 0x0200 ? "tc" : "answer"));
      assert.deepEqual(kinds, [
        ...Array(5).fill("answer"),
        ...Array.from({ length: 15 }, (_, i) => (i % 2 === 1 ? "tc" : "dropped")),
      ]);
      const warnings = () => dns.logLines.filter((l) => /over dns\.rateLimit/.test(l.msg)).length;
      assert.equal(warnings(), 1);
      // Over TCP (where TC sends it) the same client is answered.
      assert.equal((await dig(dns.port, ["ok.example.test", "+tcp", "+short"])).raw.trim(), "192.0.2.44");
      dns.clock.advance(61_000);
      for (let id = 0; id < 12; id++) await udpExchange(dns.port, query(id, "ok.example.test"), 50);
      assert.equal(warnings(), 2);
    } finally {
      await dns.close();
      await content.close();
    }
  });

  it("lets a whole office behind one address through by default", async () => {
    const content = await startContentServer({ "ok.example.test": [{ type: "A", value: "192.0.2.44" }] });
    const dns = await startResolver({ upstreams: [content.label] });
    try {
      // 2000 queries within one second of the clock, in bursts a socket buffer holds.
      let answered = 0;
      for (let burst = 0; burst < 20; burst++) {
        const replies = await Promise.all(
          Array.from({ length: 100 }, (_, i) => udpExchange(dns.port, query(burst * 100 + i, "ok.example.test"), 3000)),
        );
        answered += replies.filter((r) => r !== null && (r.readUInt16BE(2) & 0x0200) === 0).length;
      }
      assert.equal(answered, 2000);
    } finally {
      await dns.close();
      await content.close();
    }
  });
});

describe("DNS CHAOS identity queries", () => {
  for (const [config, name, expected] of [
    [{}, "version.bind", "REFUSED"],
    [{ version: "gatehouse" }, "version.bind", '"gatehouse"'],
    [{ version: "gatehouse" }, "version.server", '"gatehouse"'],
    [{ id: "gw1" }, "id.server", '"gw1"'],
    [{ id: "gw1" }, "hostname.bind", '"gw1"'],
    [{ version: "gatehouse" }, "authors.bind", "REFUSED"],
  ] as const) {
    it(`${name} with dns.chaos ${JSON.stringify(config)}: ${expected}`, async () => {
      const dns = await startResolver({ upstreams: ["127.0.0.1:9"], chaos: config });
      try {
        const r = await dig(dns.port, [name, "TXT", "CH"]);
        if (expected === "REFUSED") assert.equal(r.status, "REFUSED");
        else assert.deepEqual(r.answers, [`${name}. 0 CH TXT ${expected}`]);
      } finally {
        await dns.close();
      }
    });
  }
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
