import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CnameLoopError, isAtOrBelow, storeableAnswer } from "../../../src/dns/scrub.js";
import { buildQuery, describeAnswer, encodeName, parseQuery, readName, WireError } from "../../../src/dns/wire.js";
import { encodeMessage, type RawMessage, type RawQuery } from "../../helpers/dns-server.js";

const wire = (labels: string[]) =>
  Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])), Buffer.from([0])]);

describe("names: presentation form that keeps labels apart", () => {
  const table: [what: string, labels: string[], name: string][] = [
    ["plain labels, lower-cased", ["WWW", "Example", "test"], "www.example.test"],
    ["a dot inside a label", ["a.b", "example"], "a\\.b.example"],
    ["a backslash inside a label", ["a\\b", "example"], "a\\\\b.example"],
    ["a space and a byte above ASCII", ["a b", "\xe9t\xe9"], "a\\032b.\\233t\\233"],
    ["the root", [], ""],
  ];
  for (const [what, labels, name] of table) {
    it(`${what}: reads as ${JSON.stringify(name)} and encodes back to the same labels`, () => {
      assert.equal(readName(wire(labels), 0).name, name);
      assert.deepEqual(encodeName(name), wire(labels.map((l) => l.replace(/[A-Z]/g, (c) => c.toLowerCase()))));
    });
  }

  for (const [what, name] of [
    ["a label of 64 bytes", `${"a".repeat(64)}.test`],
    ["an empty label", "a..test"],
    ["a name of 256 bytes", Array.from({ length: 64 }, () => "abc").join(".")],
    ["a dangling backslash", "a\\"],
  ] as const) {
    it(`refuses to encode ${what}`, () => assert.throws(() => encodeName(name), WireError));
  }

  const zones: [name: string, zone: string, expected: boolean][] = [
    ["a.example.test", "example.test", true],
    ["example.test", "example.test", true],
    ["badexample.test", "example.test", false],
    ["a\\.example.test", "example.test", false],
    ["a\\.example", "example", false],
    ["a\\\\.example", "example", true],
    ["anything", "", true],
  ];
  for (const [name, zone, expected] of zones)
    it(`${name} is ${expected ? "" : "not "}at or below ${zone || "the root"}`, () =>
      assert.equal(isAtOrBelow(name, zone), expected));
});

describe("queries from clients", () => {
  it("ignores bytes after the last counted record", () => {
    const q = Buffer.concat([buildQuery(1, "example.test", 1, 1).subarray(0, 30), Buffer.from([9, 9, 9])]);
    q.writeUInt16BE(0, 10);
    const parsed = parseQuery(q);
    assert.ok(!("drop" in parsed));
    assert.equal(parsed.question.name, "example.test");
    assert.equal(parsed.questionBytes.length, 18);
  });
});

const rawQuery = (name: string, type = 1): RawQuery => ({ id: 1, labels: name.split("."), name, type, tcp: false, port: 0 });
const sections = (bytes: Buffer) => describeAnswer(bytes).answer;

describe("scrubbing upstream answers", () => {
  const A = 1;
  const table: [what: string, m: RawMessage, kept: string][] = [
    [
      "keeps the answer and its CNAME chain",
      {
        answers: [
          { name: "q.example.test", type: 5, data: "c.example.test" },
          { name: "c.example.test", type: A, data: "192.0.2.1" },
        ],
      },
      "CNAME c.example.test, 192.0.2.1",
    ],
    [
      "removes an answer for a name not asked",
      {
        answers: [
          { name: "q.example.test", type: A, data: "192.0.2.1" },
          { name: "bank.example", type: A, data: "203.0.113.1" },
        ],
      },
      "192.0.2.1",
    ],
    [
      "removes a CNAME that is not part of the chain, and what it points to",
      {
        answers: [
          { name: "q.example.test", type: A, data: "192.0.2.1" },
          { name: "other.example", type: 5, data: "x.example" },
          { name: "x.example", type: A, data: "203.0.113.2" },
        ],
      },
      "192.0.2.1",
    ],
  ];
  for (const [what, m, kept] of table) {
    it(what, () =>
      assert.equal(sections(storeableAnswer(encodeMessage(rawQuery("q.example.test"), m), "q.example.test").bytes), kept),
    );
  }

  it("keeps the zone's SOA in a negative answer and removes a foreign NS", () => {
    const soa = Buffer.concat([wire(["ns", "example", "test"]), wire(["admin", "example", "test"]), Buffer.alloc(20, 1)]);
    const stored = storeableAnswer(
      encodeMessage(rawQuery("q.example.test"), {
        rcode: 3,
        authority: [
          { name: "example.test", type: 6, data: soa },
          { name: "victim.example", type: 2, data: "ns.evil.example" },
        ],
      }),
      "q.example.test",
    );
    assert.equal(stored.bytes.readUInt16BE(8), 1);
    assert.equal(stored.info.rcode, 3);
  });

  it("answers a CNAME loop with CnameLoopError", () => {
    const m: RawMessage = {
      answers: [
        { name: "q.example.test", type: 5, data: "r.example.test" },
        { name: "r.example.test", type: 5, data: "q.example.test" },
      ],
    };
    assert.throws(() => storeableAnswer(encodeMessage(rawQuery("q.example.test"), m), "q.example.test"), CnameLoopError);
  });

  it("writes a rebuilt answer whose compression pointers stay inside it", () => {
    const m: RawMessage = {
      answers: [
        { name: "q.example.test", type: 5, data: "c.example.test" },
        { name: "junk.example", type: A, data: "203.0.113.1" },
        { name: "c.example.test", type: A, data: "192.0.2.1" },
      ],
    };
    const { bytes } = storeableAnswer(encodeMessage(rawQuery("q.example.test"), m), "q.example.test");
    assert.ok(bytes.length < encodeMessage(rawQuery("q.example.test"), m).length);
    assert.equal(sections(bytes), "CNAME c.example.test, 192.0.2.1");
    assert.equal(readName(bytes, 12).name, "q.example.test");
  });
});

describe("the query log's answer summary", () => {
  const table: [what: string, m: RawMessage, type: number, expected: string][] = [
    ["addresses as they are", { answers: [{ name: "q.t", type: 1, data: "192.0.2.1" }] }, 1, "192.0.2.1"],
    [
      "MX with its preference",
      { answers: [{ name: "q.t", type: 15, data: Buffer.concat([Buffer.from([0, 10]), wire(["mail", "t"])]) }] },
      15,
      "MX 10 mail.t",
    ],
    [
      "SRV with its numbers",
      { answers: [{ name: "q.t", type: 33, data: Buffer.concat([Buffer.from([0, 1, 0, 5, 0x01, 0xbb]), wire(["srv", "t"])]) }] },
      33,
      "SRV 1 5 443 srv.t",
    ],
    ["PTR", { answers: [{ name: "q.t", type: 12, data: "host.t" }] }, 12, "PTR host.t"],
    ["TXT", { answers: [{ name: "q.t", type: 16, data: "hello" }] }, 16, 'TXT "hello"'],
    ["the rcode when there is no record", { rcode: 3 }, 1, "NXDOMAIN"],
    [
      "a big answer by its first records and a count",
      { answers: Array.from({ length: 40 }, (_, i) => ({ name: "q.t", type: 16, data: `${"x".repeat(90)}${i}` })) },
      16,
      `${Array.from({ length: 5 }, (_, i) => `TXT "${"x".repeat(90)}${i}"`).join(", ")}, (35 more)`,
    ],
  ];
  for (const [what, m, type, expected] of table) {
    it(what, () => assert.equal(describeAnswer(encodeMessage(rawQuery("q.t", type), m)).answer, expected));
  }
});
