import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Framer, type Item } from "../../../src/fronts/tcp/framer.js";

// The framer that cuts both directions of every FTP and mail session, fed chunks as a socket would
// deliver them (split anywhere), without sockets.

function drain(f: Framer): Item[] {
  const out: Item[] = [];
  for (let i = f.next(); i; i = f.next()) out.push(i);
  return out;
}

const text = (items: Item[]) =>
  items.map((i) =>
    i.kind === "line"
      ? `L:${i.line}`
      : i.kind === "raw"
        ? `R:${i.data.toString("latin1")}${i.last ? "|end" : ""}`
        : `X:${i.limit}`,
  );

describe("framer", () => {
  it("cuts lines ending in CRLF or a bare LF, and keeps a partial line for later", () => {
    const f = new Framer(100);
    f.push(Buffer.from("EHLO a\r\nNOOP\nMAIL FR"));
    assert.deepEqual(text(drain(f)), ["L:EHLO a", "L:NOOP"]);
    f.push(Buffer.from("OM:<x>\r\n"));
    assert.deepEqual(text(drain(f)), ["L:MAIL FROM:<x>"]);
  });

  const overlong: [string, string[], string[]][] = [
    ["a line over the limit", ["x".repeat(11), "\r\n"], ["X:10"]],
    ["a line over the limit still without its ending", ["x".repeat(12)], ["X:10"]],
    ["a line of exactly the limit, its CR in the next chunk", ["x".repeat(10), "\r", "\n"], [`L:${"x".repeat(10)}`]],
  ];
  for (const [name, chunks, expected] of overlong) {
    it(`limit: ${name}`, () => {
      const f = new Framer(10);
      const got: Item[] = [];
      for (const c of chunks) {
        f.push(Buffer.from(c));
        got.push(...drain(f));
      }
      assert.deepEqual(text(got), expected);
    });
  }

  it("reads nothing more once a line was too long", () => {
    const f = new Framer(4);
    f.push(Buffer.from("toolong\r\nOK\r\n"));
    assert.deepEqual(text(drain(f)), ["X:4"]);
    f.push(Buffer.from("NOOP\r\n"));
    assert.deepEqual(drain(f), []);
  });

  it("passes a counted stretch (an IMAP literal) across chunks, then reads lines again", () => {
    const f = new Framer(100);
    f.push(Buffer.from("a1 LOGIN {5}\r\nab"));
    assert.deepEqual(text(drain(f)), ["L:a1 LOGIN {5}"]);
    f.count(5);
    f.push(Buffer.from("c\r\n secret\r\n"));
    assert.deepEqual(text(drain(f)), ["R:ab", "R:c\r\n|end", "L: secret"]);
  });

  const dots: [string, string[], string[]][] = [
    [
      "a message and the next command",
      ["Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"],
      ["R:Subject: x\r\n\r\nbody\r\n.\r\n|end", "L:QUIT"],
    ],
    ["an empty message", [".\r\nQUIT\r\n"], ["R:.\r\n|end", "L:QUIT"]],
    [
      "the end split over chunks",
      ["body\r", "\n", ".", "\r", "\nRSET\r\n"],
      ["R:body\r", "R:\n", "R:.", "R:\r", "R:\n|end", "L:RSET"],
    ],
    ["dot-stuffed lines go through", ["..hidden\r\n.x\r\n.\r\n"], ["R:..hidden\r\n.x\r\n.\r\n|end"]],
    ["bare LF line endings", ["a\n.\nNOOP\n"], ["R:a\n.\n|end", "L:NOOP"]],
    ["a dot inside a line is data", ["a.\r\nb .\r\n.\r\n"], ["R:a.\r\nb .\r\n.\r\n|end"]],
  ];
  for (const [name, chunks, expected] of dots) {
    it(`dot stretch: ${name}`, () => {
      const f = new Framer(100);
      f.dot();
      const got: Item[] = [];
      for (const c of chunks) {
        f.push(Buffer.from(c));
        got.push(...drain(f));
      }
      assert.deepEqual(text(got), expected);
    });
  }

  it("discards what is buffered (plaintext after STARTTLS) and says how much", () => {
    const f = new Framer(100);
    f.push(Buffer.from("RSET\r\nMAIL FROM:<evil>\r\n"));
    assert.equal(f.discard(), 24);
    assert.deepEqual(drain(f), []);
  });
});
