import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration, parseSize } from "../../../src/config/units.js";

describe("sizes", () => {
  const table: [string | number, number | undefined][] = [
    ["256MiB", 256 * 1024 ** 2],
    ["64k", 65536],
    ["1GB", 1e9],
    ["10 KiB", 10240],
    [4096, 4096],
    ["0", 0],
    ["lots", undefined],
    ["-1MiB", undefined],
    ["1.5MiB", 1.5 * 1024 ** 2],
    [-5, undefined],
    ["12 parsecs", undefined],
  ];
  for (const [input, want] of table) it(`${JSON.stringify(input)} is ${want}`, () => assert.equal(parseSize(input), want));
});

describe("durations", () => {
  const table: [string | number, number | undefined][] = [
    ["30s", 30_000],
    ["500ms", 500],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    [2, 2000],
    ["10", 10_000],
    ["soon", undefined],
    ["5x", undefined],
    ["", undefined],
  ];
  for (const [input, want] of table) it(`${JSON.stringify(input)} is ${want}`, () => assert.equal(parseDuration(input), want));
});
