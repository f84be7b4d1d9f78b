import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildCertificate, subjectDer, subjectKeyIdentifier, toPem } from "./x509.js";

const CA_YEARS = 10;

/** Why the office CA cannot be used, with what to do; thrown by load() and create(). */
export class CaError extends Error {
  constructor(
    readonly code: "GH_CA_MISSING" | "GH_CA_UNREADABLE" | "GH_CA_KEY_PERMISSIONS" | "GH_CA_INVALID" | "GH_CA_EXISTS",
    message: string,
  ) {
    super(message);
  }
}

export interface CaSummary {
  subject: string;
  sha256: string;
  sha1: string;
  notBefore: string;
  notAfter: string;
  keyType: string;
  certFile: string;
}

/**
 * The office CA in certs/: ca.crt (the certificate to install in browsers) and ca.key (readable by
 * its owner only). It signs the leaf certificates of intercepted sites and the fallback leaves of
 * the fronts.
 */
export class OfficeCa {
  private constructor(
    readonly cert: X509Certificate,
    readonly key: KeyObject,
    readonly certFile: string,
  ) {}

  static paths(dir: string): { cert: string; key: string } {
    return { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
  }

  static exists(dir: string): boolean {
    const p = OfficeCa.paths(dir);
    try {
      statSync(p.cert);
      statSync(p.key);
      return true;
    } catch {
      return false;
    }
  }

  /** Reads and checks the CA; every problem is a CaError saying what to do. */
  static load(dir: string): OfficeCa {
    const p = OfficeCa.paths(dir);
    let certPem: string;
    let keyPem: string;
    try {
      certPem = readFileSync(p.cert, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT")
        throw new CaError("GH_CA_MISSING", `${p.cert}: there is no office CA; create one with: npx gatehouse ca init`);
      throw new CaError("GH_CA_UNREADABLE", `${p.cert}: cannot read the CA certificate (${code})`);
    }
    let mode: number;
    try {
      mode = statSync(p.key).mode;
      keyPem = readFileSync(p.key, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT")
        throw new CaError(
          "GH_CA_MISSING",
          `${p.key}: the CA certificate has no key beside it; put ca.key there or run: npx gatehouse ca init`,
        );
      throw new CaError("GH_CA_UNREADABLE", `${p.key}: cannot read the CA key (${code})`);
    }
    // Whoever can read this key can make certificates every office browser trusts.
    if ((mode & 0o077) !== 0)
      throw new CaError(
        "GH_CA_KEY_PERMISSIONS",
        `${p.key}: the CA key is readable by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${p.key}`,
      );
    let cert: X509Certificate;
    let key: KeyObject;
    try {
      cert = new X509Certificate(certPem);
    } catch (err) {
      throw new CaError("GH_CA_INVALID", `${p.cert}: not a PEM certificate (${(err as Error).message})`);
    }
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new CaError("GH_CA_INVALID", `${p.key}: not a PEM private key (${(err as Error).message})`);
    }
    if (!cert.ca) throw new CaError("GH_CA_INVALID", `${p.cert}: the certificate is not a CA (basicConstraints CA:TRUE)`);
    if (!cert.checkPrivateKey(key)) throw new CaError("GH_CA_INVALID", `${p.key}: the key does not belong to ${p.cert}`);
    if (Date.parse(cert.validTo) < Date.now())
      throw new CaError(
        "GH_CA_INVALID",
        `${p.cert}: the CA expired on ${cert.validTo}; make a new one with: npx gatehouse ca init --force`,
      );
    return new OfficeCa(cert, key, p.cert);
  }

  /**
   * Makes a new CA: an EC P-256 key (signing a leaf with it costs a tenth of RSA-2048's time,
   * and every browser and OS of the last decade accepts it), ten years, keyCertSign.
   */
  static create(dir: string, name: string, force = false): OfficeCa {
    const p = OfficeCa.paths(dir);
    if (!force && OfficeCa.exists(dir))
      throw new CaError(
        "GH_CA_EXISTS",
        `${p.cert}: an office CA exists already; browsers trust it, so it is kept (--force replaces it)`,
      );
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const now = new Date();
    const notAfter = new Date(now);
    notAfter.setUTCFullYear(now.getUTCFullYear() + CA_YEARS);
    const der = buildCertificate({
      subject: [
        { shortName: "CN", value: name },
        { shortName: "O", value: name },
      ],
      notBefore: new Date(now.getTime() - 3600_000),
      notAfter,
      publicKeySpki: spki,
      extensions: [
        { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
        { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
        subjectKeyIdentifier(spki),
      ],
      signer: privateKey,
    });
    mkdirSync(dir, { recursive: true });
    writeFileSync(p.key, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    chmodSync(p.key, 0o600);
    writeFileSync(p.cert, toPem(der), { mode: 0o644 });
    return OfficeCa.load(dir);
  }

  get der(): Buffer {
    return this.cert.raw;
  }

  get pem(): string {
    return toPem(this.cert.raw);
  }

  /** The CA's subject as DER: the issuer field of every leaf it signs. */
  get subjectDer(): Buffer {
    return subjectDer(this.cert.raw);
  }

  get spki(): Buffer {
    return this.cert.publicKey.export({ type: "spki", format: "der" });
  }

  get notAfter(): Date {
    return new Date(this.cert.validTo);
  }

  summary(): CaSummary {
    return {
      subject: this.cert.subject.replace(/\n/g, ", "),
      sha256: this.cert.fingerprint256,
      sha1: this.cert.fingerprint,
      notBefore: new Date(this.cert.validFrom).toISOString(),
      notAfter: new Date(this.cert.validTo).toISOString(),
      keyType: describeKey(this.key),
      certFile: this.certFile,
    };
  }
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec") return `EC ${d?.namedCurve ?? ""}`.trim();
  if (key.asymmetricKeyType === "rsa") return `RSA ${d?.modulusLength ?? ""}`.trim();
  return key.asymmetricKeyType ?? "unknown";
}
