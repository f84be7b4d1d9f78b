import { generateKeyPairSync } from "node:crypto";
import { isIP } from "node:net";
import { createSecureContext, type SecureContext } from "node:tls";
import { LRUCache } from "lru-cache";
import type { OfficeCa } from "./ca.js";
import { authorityKeyIdentifier, buildCertificate, toPem } from "./x509.js";

/** Leaves are short-lived: a stolen one is useless soon, and browsers accept them without question. */
const LEAF_DAYS = 30;
/** Reminted daily, so a cached leaf is always far from its end. */
const CACHE_TTL_MS = 24 * 3600_000;
const CACHE_ENTRIES = 2000;
/** Clocks of office machines drift; a leaf valid from an hour ago is not "not yet valid" to them. */
const BACKDATE_MS = 3600_000;

export interface Leaf {
  pem: string;
  context: SecureContext;
}

/**
 * Certificates for intercepted sites (and fronts without a pair of their own), made on the fly and
 * signed by the office CA. As mitmproxy does, every leaf shares one key pair, made once (EC P-256),
 * so a leaf costs one signature; minted leaves are kept in an LRU. Minting is synchronous, so
 * concurrent handshakes for one name always share one leaf.
 */
export class LeafMinter {
  private readonly keyPem: string;
  private readonly spki: Buffer;
  private readonly aki: Record<string, unknown>;
  private readonly issuer: Buffer;
  private readonly leaves = new LRUCache<string, Leaf>({ max: CACHE_ENTRIES, ttl: CACHE_TTL_MS });
  private minted = 0;

  constructor(private readonly ca: OfficeCa) {
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.keyPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    this.spki = pair.publicKey.export({ type: "spki", format: "der" });
    this.aki = authorityKeyIdentifier(ca.spki);
    this.issuer = ca.subjectDer;
  }

  /** The leaf for a host name or IP address (lower case, no brackets). */
  leaf(name: string): Leaf {
    const known = this.leaves.get(name);
    if (known) return known;
    const pem = toPem(this.mint(name));
    const leaf = { pem, context: createSecureContext({ key: this.keyPem, cert: pem, minVersion: "TLSv1.2" }) };
    this.leaves.set(name, leaf);
    return leaf;
  }

  /** DER of a new leaf for `name`; exposed for the benchmark and tests. */
  mint(name: string, now = Date.now()): Buffer {
    const ip = isIP(name) !== 0;
    const notAfter = Math.min(now + LEAF_DAYS * 86_400_000, this.ca.notAfter.getTime());
    this.minted++;
    return buildCertificate({
      // CN is at most 64 characters (RFC 5280 ub-common-name); browsers read the SAN anyway.
      subject: name.length <= 64 ? [{ shortName: "CN", value: name }] : [{ shortName: "O", value: "gatehouse" }],
      issuerDer: this.issuer,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(notAfter),
      publicKeySpki: this.spki,
      extensions: [
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        { name: "subjectAltName", altNames: [ip ? { type: 7, ip: name } : { type: 2, value: name }] },
        this.aki,
      ],
      signer: this.ca.key,
    });
  }

  get stats(): { cached: number; minted: number } {
    return { cached: this.leaves.size, minted: this.minted };
  }
}
