import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import type { Diagnostic } from "../config/diagnostic.js";

/** Debian's (and most Linux distributions') bundle of the system's trusted roots. */
const SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

export interface UpstreamTrust {
  /** One context for every verified upstream connection (parsing the roots once, not per connection). */
  context: SecureContext;
  /** Certificates from certs/upstream-ca/ that were added. */
  extra: number;
  problems: Diagnostic[];
}

/**
 * What gatehouse trusts when it talks TLS to origins: Node's roots, the system's trust store, and
 * the admin's own in certs/upstream-ca/*.pem (an internal CA, a partner's). Never more, and never
 * "accept anything": a site whose certificate fails gets an error page, not a silent connection.
 */
export function upstreamTrust(certsDir: string): UpstreamTrust {
  const ca: string[] = [...rootCertificates];
  const problems: Diagnostic[] = [];
  try {
    ca.push(...splitPem(readFileSync(SYSTEM_BUNDLE, "utf8")));
  } catch {
    // No system bundle (a minimal container): Node's own roots remain.
  }
  const dir = join(certsDir, "upstream-ca");
  let extra = 0;
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".pem") || n.endsWith(".crt"));
  } catch {
    // No upstream-ca directory: nothing extra to trust.
  }
  for (const name of names.sort()) {
    const file = join(dir, name);
    try {
      const pems = splitPem(readFileSync(file, "utf8"));
      if (pems.length === 0) throw new Error("no PEM certificate in it");
      for (const pem of pems) {
        const cert = new X509Certificate(pem);
        if (Date.parse(cert.validTo) < Date.now()) throw new Error(`expired on ${cert.validTo}`);
      }
      ca.push(...pems);
      extra += pems.length;
    } catch (err) {
      problems.push({ file, line: 0, code: "GH_TLS_BAD_UPSTREAM_CA", message: `not trusted: ${(err as Error).message}` });
    }
  }
  return { context: createSecureContext({ ca }), extra, problems };
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
