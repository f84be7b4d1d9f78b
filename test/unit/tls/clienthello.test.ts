import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseClientHello } from "../../../src/tls/clienthello.js";

// ClientHellos captured from real clients (test/fixtures/tls/*.hex), and the same bytes cut up and
// damaged the ways a hostile or broken client might send them.

const fixture = (name: string) =>
  Buffer.from(readFileSync(new URL(`../../fixtures/tls/${name}.hex`, import.meta.url), "utf8").trim(), "hex");

/** The handshake message of a one-record hello, re-sent in records of `size` bytes. */
function fragment(hello: Buffer, size: number): Buffer {
  const msg = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < msg.length; i += size) {
    const part = msg.subarray(i, i + size);
    const head = Buffer.from([22, 3, 1, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    out.push(head, part);
  }
  return Buffer.concat(out);
}

/** A minimal ClientHello with the given extensions, to make the odd cases by hand. */
function hello(extensions: Buffer[]): Buffer {
  const ext = Buffer.concat(extensions);
  const extLen = Buffer.alloc(2);
  extLen.writeUInt16BE(ext.length);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 1),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    extLen,
    ext,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, 0, 0]), body]);
  hs.writeUIntBE(body.length, 1, 3);
  const rec = Buffer.concat([Buffer.from([22, 3, 1, 0, 0]), hs]);
  rec.writeUInt16BE(hs.length, 3);
  return rec;
}

function sniExt(name: string, type = 0): Buffer {
  const n = Buffer.from(name, "latin1");
  const entry = Buffer.concat([Buffer.from([type, 0, 0]), n]);
  entry.writeUInt16BE(n.length, 1);
  const list = Buffer.concat([Buffer.from([0, 0]), entry]);
  list.writeUInt16BE(entry.length, 0);
  const head = Buffer.from([0, 0, 0, 0]);
  head.writeUInt16BE(list.length, 2);
  return Buffer.concat([head, list]);
}

describe("ClientHello parser: captured clients", () => {
  for (const [name, sni, alpn] of [
    ["curl", "intranet.office.example", ["h2", "http/1.1"]],
    ["node-sni-alpn", "shop.example", ["h2", "http/1.1"]],
    ["node-no-sni", undefined, []],
    ["openssl-sni", "mail.office.example", ["http/1.1"]],
  ] as const) {
    it(`${name}: SNI ${sni ?? "none"}, ALPN ${alpn.join(",") || "none"}`, () => {
      const r = parseClientHello(fixture(name));
      assert.deepEqual(r.kind === "hello" ? { sni: r.sni, alpn: r.alpn } : r, { sni, alpn: [...alpn] });
    });
  }

  it("asks for more bytes at every cut of a captured hello, and reads it whole at the end", () => {
    const whole = fixture("curl");
    for (let n = 0; n < whole.length; n++) assert.equal(parseClientHello(whole.subarray(0, n)).kind, "more", `cut at ${n}`);
    assert.equal(parseClientHello(whole).kind, "hello");
  });

  it("reads a hello split over many small records", () => {
    const r = parseClientHello(fragment(fixture("curl"), 50));
    assert.equal(r.kind === "hello" && r.sni, "intranet.office.example");
  });
});

describe("ClientHello parser: what it refuses", () => {
  const bigRecord = Buffer.from([22, 3, 1, 0x50, 0x00]);
  const cases: [string, Buffer, RegExp][] = [
    ["plain HTTP instead of TLS", Buffer.from("GET / HTTP/1.1\r\n\r\n"), /did not start TLS/],
    ["garbage", Buffer.from([0x16, 0x99, 0x01, 0x00, 0x10, 1, 2, 3]), /not a TLS record/],
    ["a record larger than TLS allows", bigRecord, /record of 20480 bytes/],
    ["a ServerHello instead", Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0]), /not a ClientHello/],
    ["a server name that is not a host name", hello([sniExt("bad name!.example")]), /is not a host name/],
    ["an IP address as server name", hello([sniExt("192.0.2.1")]), /is not a host name/],
    ["two server_name extensions", hello([sniExt("a.example"), sniExt("b.example")]), /extension 0 twice/],
    ["an extension running past the end", hello([Buffer.from([0, 16, 0, 40, 0, 2, 2, 104, 50])]), /runs past its end/],
  ];
  for (const [name, bytes, reason] of cases) {
    it(name, () => {
      const r = parseClientHello(bytes);
      assert.equal(r.kind, "error");
      assert.match(r.kind === "error" ? r.reason : "", reason);
    });
  }

  it("gives up on a stream that never completes a hello within 64 KiB", () => {
    const head = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00]);
    const records = Array.from({ length: 6 }, () => Buffer.concat([Buffer.from([22, 3, 1, 0x40, 0x00]), Buffer.alloc(0x4000)]));
    const r = parseClientHello(Buffer.concat([head.subarray(0, 5), Buffer.alloc(0x4000, 1), ...records]));
    assert.equal(r.kind, "error");
  });

  it("reads a hello without SNI as one without a name", () => {
    const r = parseClientHello(hello([]));
    assert.deepEqual(r.kind === "hello" ? r.sni : "error", undefined);
  });
});
