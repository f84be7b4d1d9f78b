import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authorityKeyIdentifier, buildCertificate, subjectDer, subjectKeyIdentifier, toPem } from "../../src/tls/x509.js";

/** A certificate authority for test origins (the "internet" side), not the office CA. */
export interface TestCa {
  pem: string;
  der: Buffer;
  key: KeyObject;
  spki: Buffer;
}

export function makeCa(name = "test upstream CA"): TestCa {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const der = buildCertificate({
    subject: [{ shortName: "CN", value: name }],
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    publicKeySpki: spki,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, critical: true },
      subjectKeyIdentifier(spki),
    ],
    signer: privateKey,
  });
  return { pem: toPem(der), der, key: privateKey, spki };
}

/** A server certificate for `names`, signed by `ca`, valid from/to the given times. */
export function issue(ca: TestCa, names: string[], validity: { from?: number; to?: number } = {}): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const der = buildCertificate({
    subject: [{ shortName: "CN", value: names[0] as string }],
    issuerDer: subjectDer(ca.der),
    notBefore: new Date(validity.from ?? Date.now() - 86_400_000),
    notAfter: new Date(validity.to ?? Date.now() + 30 * 86_400_000),
    publicKeySpki: spki,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: names.map((n) => (/^[\d.]+$/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
      authorityKeyIdentifier(ca.spki),
    ],
    signer: ca.key,
  });
  return { cert: toPem(der), key: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

export interface HttpsOrigin {
  port: number;
  requests: { method: string; url: string; headers: IncomingMessage["headers"] }[];
  close(): Promise<void>;
}

/** An HTTPS server on 127.0.0.1:0 with the given certificate, recording what reached it. */
export async function startHttpsOrigin(
  pair: { cert: string; key: string },
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<HttpsOrigin> {
  const requests: HttpsOrigin["requests"] = [];
  const server: Server = createHttpsServer({ cert: pair.cert, key: pair.key }, (req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A certs/ directory with an upstream CA the proxy trusts (certs/upstream-ca/test.pem). */
export function certsDir(upstream: TestCa): string {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-certs-"));
  mkdirSync(join(dir, "upstream-ca"));
  writeFileSync(join(dir, "upstream-ca", "test.pem"), upstream.pem);
  return dir;
}
