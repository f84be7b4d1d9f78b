import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dig, framed, query, startResolver, TcpClient, type TestResolver, udpExchange, until } from "../helpers/dns.js";
import { type RawMessage, type RawQuery, type RawUpstream, startRawUpstream } from "../helpers/dns-server.js";
import { retainedBytes } from "../helpers/memory.js";

// The resolver against upstreams written here to misbehave, and clients that do. After every bad
// case a normal query must be answered correctly: the process stays up and keeps serving.

const A = 1;
const TXT = 16;
const CNAME = 5;
const MX = 15;

/** A well-behaved upstream: every name has A 192.0.2.2. */
const good = (q: RawQuery): RawMessage => ({ answers: [{ name: q.labels, type: A, data: "192.0.2.2" }] });

/** TXT records adding up to about `bytes` (each string 250 bytes). */
function txtOf(q: RawQuery, bytes: number): RawMessage {
  const count = Math.ceil(bytes / 262);
  return {
    answers: Array.from({ length: count }, (_, i) => ({
      name: q.labels,
      type: TXT,
      data: `${String(i).padStart(4, "0")}${"t".repeat(246)}`,
    })),
  };
}

async function withResolvers(
  bad: RawUpstream["answer"],
  dnsConfig: Parameters<typeof startResolver>[0],
  body: (dns: TestResolver, badUp: RawUpstream, goodUp: RawUpstream) => Promise<void>,
): Promise<void> {
  // The bad upstream misbehaves for every name but the one the normal query afterwards asks.
  const badUp = await startRawUpstream((q) => (q.name === "normal.example.test" ? good(q) : bad(q)));
  const goodUp = await startRawUpstream(good);
  const dns = await startResolver({ upstreams: [badUp.label, goodUp.label], ...dnsConfig });
  try {
    await body(dns, badUp, goodUp);
    assert.deepEqual(
      (await dig(dns.port, ["normal.example.test", "+short"])).raw.trim(),
      "192.0.2.2",
      "a normal query afterwards",
    );
  } finally {
    await dns.close();
    await Promise.all([badUp.close(), goodUp.close()]);
  }
}

describe("DNS against misbehaving upstreams", () => {
  // A 60 s dns.timeout and dig's 3 s: only an immediate failover gets the answer out in time.
  const atOnce: [what: string, answer: RawUpstream["answer"]][] = [
    ["answers with another ID", (q) => ({ id: q.id ^ 0x5555, answers: [{ name: q.labels, type: A, data: "203.0.113.1" }] })],
    [
      "answers another question",
      () => ({
        question: { name: "other.example.test", type: A },
        answers: [{ name: "other.example.test", type: A, data: "203.0.113.1" }],
      }),
    ],
    ["answers SERVFAIL", () => ({ rcode: 2 })],
    ["answers REFUSED", () => ({ rcode: 5 })],
    [
      "answers with garbage after a valid header",
      (q) => Buffer.concat([Buffer.from([q.id >> 8, q.id & 0xff, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), Buffer.from([63, 1, 2])]),
    ],
  ];
  for (const [what, answer] of atOnce) {
    it(`fails over at once from an upstream that ${what}`, () =>
      withResolvers(answer, { timeout: "60s" }, async (dns, badUp) => {
        const r = await dig(dns.port, ["x.example.test"]);
        assert.deepEqual(r.answers, ["x.example.test. 300 IN A 192.0.2.2"]);
        assert.equal(badUp.queries.length, 1);
      }));
  }

  it("fails over from a silent upstream after dns.timeout", () =>
    withResolvers(
      () => null,
      { timeout: "200ms" },
      async (dns) => {
        assert.deepEqual((await dig(dns.port, ["x.example.test", "+short"])).raw.trim(), "192.0.2.2");
      },
    ));

  it("removes records for names that were not asked and are not in the CNAME chain", () =>
    withResolvers(
      (q) => ({
        answers: [
          { name: q.labels, type: CNAME, data: "real.example.test" },
          { name: "real.example.test", type: A, data: "192.0.2.9" },
          { name: "bank.example.com", type: A, data: "203.0.113.66" },
        ],
        authority: [{ name: "victim.example.org", type: 2, data: "ns.evil.example" }],
        additional: [{ name: "www.bank.example", type: A, data: "203.0.113.67" }],
      }),
      {},
      async (dns) => {
        const r = await dig(dns.port, ["poison.example.test"]);
        assert.deepEqual(r.answers, [
          "poison.example.test. 300 IN CNAME real.example.test.",
          "real.example.test. 300 IN A 192.0.2.9",
        ]);
        assert.deepEqual(r.authority, []);
        assert.equal(r.additional.length, 0, r.raw);
        // Not cached either: the cached copy is the scrubbed one.
        assert.doesNotMatch((await dig(dns.port, ["poison.example.test"])).raw, /203\.0\.113/);
      },
    ));

  it("keeps the addresses of the names an MX answer points to", () =>
    withResolvers(
      (q) => ({
        answers: [
          {
            name: q.labels,
            type: MX,
            data: Buffer.concat([Buffer.from([0, 10]), Buffer.from("\x04mail\x07example\x04test\x00", "latin1")]),
          },
        ],
        additional: [
          { name: "mail.example.test", type: A, data: "192.0.2.25" },
          { name: "other.example.test", type: A, data: "203.0.113.9" },
        ],
      }),
      {},
      async (dns) => {
        const r = await dig(dns.port, ["example.test", "MX"]);
        assert.deepEqual(r.answers, ["example.test. 300 IN MX 10 mail.example.test."]);
        assert.deepEqual(r.additional, ["mail.example.test. 300 IN A 192.0.2.25"]);
      },
    ));

  it("answers SERVFAIL for a CNAME loop, and does not cache it", () =>
    withResolvers(
      (q) => ({
        answers: [
          { name: q.labels, type: CNAME, data: "b.loop.test" },
          { name: "b.loop.test", type: CNAME, data: q.labels },
        ],
      }),
      {},
      async (dns, badUp) => {
        assert.equal((await dig(dns.port, ["a.loop.test"])).status, "SERVFAIL");
        assert.equal((await dig(dns.port, ["a.loop.test"])).status, "SERVFAIL");
        assert.equal(badUp.queries.length, 2);
      },
    ));

  it("serves an answer above dns.cache.maxAnswer in full over TCP without keeping it", () =>
    withResolvers(
      (q) => (q.tcp ? txtOf(q, 60_000) : { tc: true }),
      {},
      async (dns, badUp) => {
        for (let i = 0; i < 2; i++) {
          const r = await dig(dns.port, ["huge.example.test", "TXT", "+tcp"]);
          assert.equal(r.answers.length, 230);
        }
        assert.equal(badUp.queries.filter((q) => q.tcp).length, 2, "asked again: not kept");
        assert.equal(dns.resolver.cache.size, 0);
      },
    ));

  it("keeps a label holding a dot as one label, with compression pointers that stay valid", () =>
    withResolvers(
      (q) => {
        // The answer's owner is a pointer to the question name (offset 12).
        const head = Buffer.from([q.id >> 8, q.id & 0xff, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        const qname = Buffer.concat([
          ...q.labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])),
          Buffer.from([0]),
        ]);
        const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 77]);
        return Buffer.concat([head, qname, Buffer.from([0, q.type, 0, 1]), rr]);
      },
      {},
      async (dns, badUp) => {
        const r = await dig(dns.port, ["a\\.b.example.test"]);
        assert.deepEqual(badUp.queries[0]?.labels, ["a.b", "example", "test"]);
        assert.deepEqual(r.answers, ["a\\.b.example.test. 300 IN A 192.0.2.77"]);
        // A different name (two labels "a", "b") is a different cache entry and a different question.
        await dig(dns.port, ["a.b.example.test"]);
        assert.deepEqual(badUp.queries[1]?.labels, ["a", "b", "example", "test"]);
      },
    ));

  it("uses a fresh source port for every upstream query", () =>
    withResolvers(good, {}, async (dns, badUp) => {
      for (let i = 0; i < 25; i++) {
        await Promise.all(
          Array.from({ length: 8 }, (_, j) => udpExchange(dns.port, query(i * 8 + j, `p${i * 8 + j}.example.test`), 3000)),
        );
      }
      const ports = new Set(badUp.queries.map((q) => q.port));
      assert.equal(badUp.queries.length, 200);
      // Kernel-chosen random ports from a range of about 28,000: a repeat or two is chance.
      assert.ok(ports.size >= 195, `${ports.size} ports for 200 queries`);
      assert.equal(dns.resolver.forwarder.openSockets, 0);
    }));
});

describe("DNS clients that misbehave", () => {
  it("answers a query with bytes after the question", () =>
    withResolvers(good, {}, async (dns) => {
      const padded = Buffer.concat([query(7, "pad.example.test").subarray(0, 12 + 18 + 4), Buffer.from([1, 2, 3, 4, 5])]);
      padded.writeUInt16BE(0, 10);
      const reply = await udpExchange(dns.port, padded, 3000);
      assert.ok(reply);
      assert.equal(reply.readUInt16BE(0), 7);
      assert.equal(reply.readUInt16BE(2) & 0xf, 0);
      assert.equal(reply.readUInt16BE(6), 1);
    }));

  it("answers 1000 queries pipelined on one TCP connection, pausing at 64 owed", () =>
    withResolvers(good, {}, async (dns) => {
      const c = new TcpClient(dns.port);
      await c.ready;
      c.socket.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => framed(query(i, `n${i}.example.test`)))));
      await until(() => c.answers.length === 1000, "1000 answers", 20_000);
      assert.deepEqual(new Set(c.answers.map((a) => a.readUInt16BE(0))).size, 1000);
      assert.equal(c.closed, false);
      c.socket.destroy();
    }));

  it("sends every answer owed to a client that half-closes after its queries", () =>
    withResolvers(good, {}, async (dns) => {
      const c = new TcpClient(dns.port);
      await c.ready;
      c.socket.end(Buffer.concat([1, 2, 3].map((id) => framed(query(id, `h${id}.example.test`)))));
      await until(() => c.closed, "the server closing after the answers");
      assert.deepEqual(c.answers.map((a) => a.readUInt16BE(0)).sort(), [1, 2, 3]);
    }));

  it("closes a connection whose query trickles in a byte at a time, before it is complete", () =>
    withResolvers(good, { tcpIdleTimeout: "300ms" }, async (dns) => {
      const c = new TcpClient(dns.port);
      await c.ready;
      const bytes = framed(query(9, "slow.example.test"));
      let sent = 0;
      // Each byte resets an idle timer; only a bound on the whole query stops this client.
      const timer = setInterval(() => {
        if (c.closed || sent === bytes.length) return clearInterval(timer);
        c.socket.write(bytes.subarray(sent, ++sent));
      }, 40);
      await until(() => c.closed, "the server closing the slow connection", 10_000);
      clearInterval(timer);
      assert.ok(sent < bytes.length, `sent ${sent} of ${bytes.length}`);
      assert.equal(c.answers.length, 0);
    }));

  it("closes a connection that never reads its answers once a bounded amount is queued", () =>
    withResolvers(
      (q) => txtOf(q, 12_000),
      // Longer than the wait below: only the bound on queued answers can close this connection.
      { tcpIdleTimeout: "60s" },
      async (dns) => {
        const c = new TcpClient(dns.port);
        await c.ready;
        c.socket.pause();
        // 3000 answers of 12 KB: 36 MB, more than every kernel buffer between the two ends.
        for (let i = 0; i < 3000; i++) c.socket.write(framed(query(i, `r${i % 50}.example.test`, TXT)));
        // A paused socket does not notice the reset, so the server side is watched.
        await until(() => dns.server.connections === 0, "the server closing the connection", 20_000);
      },
    ));
});

describe("DNS memory stays bounded", () => {
  it("keeps the cache within dns.cache.size while thousands of large answers pass, and holds no more", () =>
    withResolvers(
      (q) => (q.tcp ? txtOf(q, 12_000) : { tc: true }),
      { cache: { size: "4MiB" } },
      async (dns) => {
        const before = retainedBytes();
        const c = new TcpClient(dns.port);
        await c.ready;
        // 3000 names with 12 KB answers (below maxAnswer, so each one is kept until pushed out).
        for (let start = 0; start < 3000; start += 500) {
          c.socket.write(
            Buffer.concat(Array.from({ length: 500 }, (_, i) => framed(query(start + i, `big${start + i}.example.test`, TXT)))),
          );
          await until(() => c.answers.length === start + 500, `${start + 500} answers`, 30_000);
          assert.ok(dns.resolver.cache.bytes <= 4 * 2 ** 20, `${dns.resolver.cache.bytes} bytes cached`);
        }
        c.socket.destroy();
        c.answers.length = 0;
        assert.ok(dns.resolver.cache.size > 200, `${dns.resolver.cache.size} entries`);
        const grown = (retainedBytes() - before) / 2 ** 20;
        // Unbounded, the 36 MB of answers would all be kept; bounded, the 4 MiB cache and change.
        assert.ok(grown < 24, `${grown.toFixed(0)} MiB more held after a full collection`);
      },
    ));
});
