import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fronts } from "../../../src/config/fronts-schema.js";

// The FTP keys of a front, checked where the config is read, with messages that say what to write.

const base = { name: "files", protocol: "ftp", listen: [":21"], backend: "10.0.0.30:21", passive: "50000-50099" };

describe("ftp front config", () => {
  const table: [name: string, entry: Record<string, unknown>, error: string | undefined][] = [
    ["a public address for 227 replies", { ...base, passiveAddress: "203.0.113.10" }, undefined],
    [
      "an IPv6 passiveAddress",
      { ...base, passiveAddress: "2001:db8::1" },
      "expected the IPv4 address clients reach gatehouse at",
    ],
    ["a name as passiveAddress", { ...base, passiveAddress: "ftp.office.example" }, "expected the IPv4 address"],
    [
      "passiveAddress on a mail front",
      { name: "mx", protocol: "smtp", listen: [":25"], backend: "10.0.0.25:25", passiveAddress: "203.0.113.10" },
      "passiveAddress is for ftp fronts",
    ],
    ["no passive range", { ...base, passive: undefined }, "an ftp front needs its own passive port range"],
  ];
  for (const [name, entry, error] of table) {
    it(`${error ? "refuses" : "accepts"} ${name}`, () => {
      const r = fronts.safeParse([entry]);
      if (!error) return assert.ok(r.success, JSON.stringify(r.error?.issues));
      assert.ok(!r.success);
      assert.ok(
        r.error.issues.some((i) => i.message.includes(error)),
        JSON.stringify(r.error.issues),
      );
    });
  }
});
