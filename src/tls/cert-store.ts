import { createPrivateKey, X509Certificate } from "node:crypto";
import { basename } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import type { Diagnostic } from "../config/diagnostic.js";
import type { Logger } from "../log/logger.js";
import { type FileKind, type FileSummary, RulesStore } from "../rules/store.js";
import type { LeafMinter } from "./leaf.js";

/** A certificate and its key from certs/, ready to serve. */
export interface CertPair {
  /** The file's stem: what a front's `tls.cert` names. */
  name: string;
  file: string;
  /** DNS names from subjectAltName, lower case; "*.x" for wildcards. */
  names: string[];
  notAfter: string;
  context: SecureContext;
}

const EXPIRY_WARNING_MS = 14 * 86_400_000;

/**
 * certs/NAME.crt with certs/NAME.key beside it (the .crt may hold the chain after the leaf),
 * compiled as a pair: the key must belong to the certificate, the certificate must be in date and
 * list the names it serves. A pair that stops compiling keeps its last good version in force.
 */
export const certPairFiles: FileKind<CertPair> = {
  name: "certificate",
  matches: (rel) => !rel.includes("/") && rel.endsWith(".crt") && rel !== "ca.crt",
  companions: (abs) => [abs.replace(/\.crt$/, ".key")],
  compile: (file, text, companions) => {
    const problems: Diagnostic[] = [];
    const problem = (message: string) => problems.push({ file, line: 0, code: "GH_TLS_BAD_PAIR", message });
    const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    const keyText = companions?.[0];
    const name = basename(file, ".crt");
    const none: CertPair = { name, file, names: [], notAfter: "", context: createSecureContext() };
    if (pems.length === 0) {
      problem("no PEM certificate in it");
      return { value: none, diagnostics: problems };
    }
    if (keyText === undefined) {
      problem(`no ${name}.key beside it; put the private key there`);
      return { value: none, diagnostics: problems };
    }
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(pems[0] as string);
      for (const pem of pems.slice(1)) new X509Certificate(pem);
      const key = createPrivateKey(keyText);
      if (!leaf.checkPrivateKey(key)) problem(`${name}.key is not the key of this certificate`);
    } catch (err) {
      problem(`cannot be read: ${(err as Error).message}`);
      return { value: none, diagnostics: problems };
    }
    const names = (leaf.subjectAltName ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.startsWith("DNS:"))
      .map((s) => s.slice(4).toLowerCase());
    if (names.length === 0) problem("lists no DNS names (subjectAltName); browsers would refuse it");
    const until = Date.parse(leaf.validTo);
    if (until < Date.now()) problem(`expired on ${leaf.validTo}; renew it`);
    if (Date.parse(leaf.validFrom) > Date.now()) problem(`not valid before ${leaf.validFrom}`);
    let context = none.context;
    if (problems.length === 0) {
      try {
        context = createSecureContext({ cert: pems.join("\n"), key: keyText, minVersion: "TLSv1.2" });
      } catch (err) {
        problem(`cannot be served: ${(err as Error).message}`);
      }
    }
    return { value: { name, file, names, notAfter: new Date(until).toISOString(), context }, diagnostics: problems };
  },
  count: (pair) => pair.names.length,
};

/**
 * The certificates the fronts present, chosen by the server name a client asks for (SNI): an exact
 * name first, then a wildcard for one label; with no pair for the name, a leaf from the office CA
 * when there is one. Files in certs/ are watched: a replaced certificate applies within a second.
 */
export class CertStore {
  private readonly store: RulesStore;

  constructor(
    dir: string,
    private readonly log: Logger | undefined,
    private readonly fallback: () => LeafMinter | undefined,
  ) {
    this.store = new RulesStore([{ dir, kinds: [certPairFiles] }], log);
  }

  /** Reads every pair now; returns the problems (also logged). */
  load(): Diagnostic[] {
    this.store.scan();
    for (const pair of this.pairs()) {
      const left = Date.parse(pair.notAfter) - Date.now();
      if (left < EXPIRY_WARNING_MS)
        this.log?.warn({ file: pair.file }, `${pair.file}: expires on ${pair.notAfter.slice(0, 10)}; renew it`);
    }
    return this.store.diagnostics();
  }

  watch(): void {
    this.store.watch(1000, () => {});
  }

  close(): Promise<void> {
    return this.store.close();
  }

  pairs(): CertPair[] {
    return this.store.values(certPairFiles).filter((p) => p.names.length > 0);
  }

  summary(): FileSummary[] {
    return this.store.summary();
  }

  /** The pair a front names in `tls.cert`. */
  named(name: string): CertPair | undefined {
    return this.pairs().find((p) => p.name === name);
  }

  /** The context for a server name: a pair that covers it, else a leaf from the office CA. */
  contextFor(servername: string | undefined): SecureContext | undefined {
    const name = servername?.toLowerCase();
    if (name) {
      const pairs = this.pairs();
      const exact = pairs.find((p) => p.names.includes(name));
      if (exact) return exact.context;
      const dot = name.indexOf(".");
      const wildcard = dot > 0 ? `*${name.slice(dot)}` : undefined;
      const wild = wildcard ? pairs.find((p) => p.names.includes(wildcard)) : undefined;
      if (wild) return wild.context;
      const minter = this.fallback();
      if (minter) return minter.leaf(name).context;
    }
    return undefined;
  }
}
