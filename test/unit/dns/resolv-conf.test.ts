import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { systemNameservers } from "../../../src/dns/resolver.js";

function resolvConf(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "gatehouse-resolv-")), "resolv.conf");
  writeFileSync(file, text);
  return file;
}

describe("default upstreams from /etc/resolv.conf", () => {
  const conf = resolvConf(
    "# comment\nnameserver 10.0.0.53\nnameserver 127.0.0.1\nnameserver ::1\nsearch office.lan\nnameserver bogus\n",
  );
  const table: [name: string, listen: string[], expected: string[]][] = [
    ["listening on every interface on 53: loopback nameservers are gatehouse itself", [":53"], ["10.0.0.53"]],
    ["listening on 127.0.0.1:53 only: that one is us", ["127.0.0.1:53"], ["10.0.0.53", "::1"]],
    ["listening on another port: every nameserver is someone else", [":5353"], ["10.0.0.53", "127.0.0.1", "::1"]],
    ["DNS turned off", [], ["10.0.0.53", "127.0.0.1", "::1"]],
  ];
  for (const [name, listen, expected] of table) it(name, () => assert.deepEqual(systemNameservers(listen, conf), expected));

  it("gives none when the file is missing", () => assert.deepEqual(systemNameservers([":53"], "/nonexistent/resolv.conf"), []));
});
