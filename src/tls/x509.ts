import { createHash, type KeyObject, randomBytes, sign } from "node:crypto";
import forge from "node-forge";

// Certificates are built with node-forge (its ASN.1 and extension encoders) and signed with
// node:crypto: forge's own JavaScript RSA signing costs ~47 ms a certificate here, crypto.sign well
// under 1 ms. forge's pki only knows RSA keys, so the parts that depend on the key type (the
// subject's public key, the signature algorithm) are put into the structure as DER from node.

const { asn1 } = forge;
type Asn1 = forge.asn1.Asn1;

export interface NameAttribute {
  shortName: "CN" | "O" | "OU" | "C";
  value: string;
}

export interface CertificateSpec {
  subject: NameAttribute[];
  /** The issuer's Name as DER (the CA certificate's subject); absent: self-signed. */
  issuerDer?: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** The subject's public key as SubjectPublicKeyInfo DER. */
  publicKeySpki: Buffer;
  /** forge extension objects: { name: "basicConstraints", cA: true, critical: true }... */
  extensions: Record<string, unknown>[];
  /** The key that signs: the CA's (or the subject's own, self-signed). */
  signer: KeyObject;
}

// A stand-in RSA key for forge's encoder, replaced by the real SubjectPublicKeyInfo afterwards.
const PLACEHOLDER_KEY = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger("3"), new forge.jsbn.BigInteger("3"));

/** DER of a certificate made from `spec` and signed by `spec.signer`. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  const cert = forge.pki.createCertificate();
  cert.publicKey = PLACEHOLDER_KEY;
  // A positive 128-bit serial: unique without a database (RFC 5280 §4.1.2.2 allows up to 20 octets).
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  const name = nameFields(spec.subject);
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions(spec.extensions);
  // Replaced below by the signer's own algorithm; forge needs some OID to encode.
  (cert.siginfo as { algorithmOid?: string }).algorithmOid = forge.pki.oids.sha256WithRSAEncryption as string;
  const algorithm = signatureAlgorithm(spec.signer);
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): Asn1 }).getTBSCertificate(cert);
  const fields = tbs.value as Asn1[];
  fields[2] = algorithm;
  if (spec.issuerDer) fields[3] = fromDer(spec.issuerDer);
  fields[6] = fromDer(spec.publicKeySpki);
  const tbsDer = toDer(tbs);
  const signature = sign("sha256", tbsDer, spec.signer);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    fromDer(tbsDer),
    signatureAlgorithm(spec.signer),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\u0000${signature.toString("binary")}`),
  ]);
  return toDer(certificate);
}

/** Name attributes as UTF8String (RFC 5280 §4.1.2.4), so a CA name in any language survives. */
function nameFields(attrs: NameAttribute[]): forge.pki.CertificateField[] {
  return attrs.map((a) => ({
    shortName: a.shortName,
    value: forge.util.encodeUtf8(a.value),
    valueTagClass: asn1.Type.UTF8 as unknown as forge.asn1.Class,
  }));
}

/** sha256WithRSAEncryption (with its NULL parameter) or ecdsa-with-SHA256 (without one, RFC 5758). */
function signatureAlgorithm(key: KeyObject): Asn1 {
  const type = key.asymmetricKeyType;
  const oid = type === "rsa" ? "1.2.840.113549.1.1.11" : type === "ec" ? "1.2.840.10045.4.3.2" : undefined;
  if (!oid) throw new Error(`a ${type} key cannot sign certificates here; use an RSA or EC (P-256) key`);
  const parts: Asn1[] = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes())];
  if (type === "rsa") parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ""));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

function fromDer(der: Buffer): Asn1 {
  return asn1.fromDer(der.toString("binary"));
}

function toDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), "binary");
}

/** The subject Name of a certificate, as DER: the issuer of what it signs. */
export function subjectDer(certDer: Buffer): Buffer {
  const cert = fromDer(certDer);
  const tbs = (cert.value as Asn1[])[0] as Asn1;
  return toDer((tbs.value as Asn1[])[5] as Asn1);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING. */
function keyIdentifier(spkiDer: Buffer): string {
  const spki = fromDer(spkiDer);
  const bits = (spki.value as Asn1[])[1] as Asn1;
  return createHash("sha1")
    .update(Buffer.from((bits.value as string).slice(1), "binary"))
    .digest()
    .toString("binary");
}

// forge derives key identifiers from its own (RSA) key object, so these two are built here.

/** The subjectKeyIdentifier extension for a key. */
export function subjectKeyIdentifier(spkiDer: Buffer): Record<string, unknown> {
  return {
    id: "2.5.29.14",
    value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, keyIdentifier(spkiDer)),
  };
}

/** The authorityKeyIdentifier extension naming the issuer's key. */
export function authorityKeyIdentifier(issuerSpkiDer: Buffer): Record<string, unknown> {
  return {
    id: "2.5.29.35",
    value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, keyIdentifier(issuerSpkiDer)),
    ]),
  };
}

export function toPem(der: Buffer): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END CERTIFICATE-----\n`;
}
