import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, createServer, type Server } from "node:tls";
import pino from "pino";
import { OfficeCa } from "../../src/tls/ca.js";
import { CertStore } from "../../src/tls/cert-store.js";
import { LeafMinter } from "../../src/tls/leaf.js";
import { runGatehouse } from "../helpers/cli.js";
import { eventually } from "../helpers/proxy.js";
import { certsDir, issue, makeCa, type TestCa } from "../helpers/tls.js";

// The fronts' certificates: pairs in certs/ chosen by SNI, replaced while serving, and checked.

function writePair(dir: string, name: string, pair: { cert: string; key: string }): void {
  writeFileSync(join(dir, `${name}.key`), pair.key, { mode: 0o600 });
  writeFileSync(join(dir, `${name}.crt`), pair.cert);
}

/** The subject CN of the certificate a TLS server presents for `servername`. */
function presented(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", servername, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.destroy();
      resolve(String(cert.subject?.CN ?? ""));
    });
    s.on("error", reject);
  });
}

describe("certificate store for the fronts", () => {
  let ca: TestCa;
  let dir: string;
  let store: CertStore;
  let server: Server;
  let port: number;
  const lines: { msg: string }[] = [];

  before(async () => {
    ca = makeCa();
    dir = certsDir(ca);
    writePair(dir, "intranet", issue(ca, ["intranet.office.test"]));
    writePair(dir, "wild", issue(ca, ["*.shop.test"]));
    const office = OfficeCa.create(dir, "test office CA");
    const log = pino({ level: "info", base: undefined }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const minter = new LeafMinter(office);
    store = new CertStore(dir, log, () => minter);
    assert.deepEqual(store.load(), []);
    store.watch();
    server = createServer({ SNICallback: (name, cb) => cb(null, store.contextFor(name)) }, (s) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await store.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  for (const [servername, cn] of [
    ["intranet.office.test", "intranet.office.test"],
    ["www.shop.test", "*.shop.test"],
    // A wildcard covers one label only (RFC 6125 §6.4.3): a deeper name gets a leaf from the CA.
    ["a.b.shop.test", "a.b.shop.test"],
    ["unknown.test", "unknown.test"],
  ] as const) {
    it(`presents ${cn} for ${servername}`, async () => {
      assert.equal(await presented(port, servername), cn);
    });
  }

  it("serves a replaced certificate within a second, without a restart", async () => {
    writePair(dir, "intranet", issue(ca, ["intranet.office.test", "new.office.test"]));
    await eventually(async () => (await presented(port, "new.office.test")) === "intranet.office.test", 5000, "new pair served");
  });

  it("keeps the last good pair when a new one does not match its key, and says which file", async () => {
    const other = issue(ca, ["intranet.office.test"]);
    writeFileSync(join(dir, "intranet.crt"), issue(ca, ["intranet.office.test"]).cert);
    writeFileSync(join(dir, "intranet.key"), other.key);
    await eventually(
      () => lines.some((l) => /intranet\.crt: intranet\.key is not the key of this certificate/.test(l.msg)),
      5000,
      "logged",
    );
    assert.equal(await presented(port, "new.office.test"), "intranet.office.test");
  });
});

describe("gatehouse check and certificates", () => {
  it("reports an expired pair and a pair without its key, with their files", async () => {
    const ca = makeCa();
    const dir = certsDir(ca);
    writePair(dir, "old", issue(ca, ["old.test"], { from: Date.now() - 5 * 86_400_000, to: Date.now() - 86_400_000 }));
    writeFileSync(join(dir, "lonely.crt"), issue(ca, ["lonely.test"]).cert);
    const config = join(dir, "gatehouse.yaml");
    writeFileSync(config, `certs: ${dir}\ndns:\n  listen: []\n`);
    const r = await runGatehouse(["check", "-c", config]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /old\.crt: expired on/);
    assert.match(r.stdout, /lonely\.crt: no lonely\.key beside it/);
  });
});
