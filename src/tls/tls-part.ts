import type { Diagnostic } from "../config/diagnostic.js";
import type { Config } from "../config/schema.js";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import { CaError, OfficeCa } from "./ca.js";
import { CertStore } from "./cert-store.js";
import { LeafMinter } from "./leaf.js";
import { type UpstreamTrust, upstreamTrust } from "./trust.js";

/**
 * The TLS material of one generation: the office CA and its leaf minter (when certs/ has a CA),
 * the certificate pairs of the fronts, and the roots upstream certificates are verified against.
 * A reload that keeps the same CA keeps the minter (and every leaf minted so far); one that keeps
 * the certs directory keeps the watched store.
 */
export class TlsPart implements Part {
  readonly name = "certs";
  ca: OfficeCa | undefined;
  minter: LeafMinter | undefined;
  /** Read when the generation is built: the origin pools are made with it. */
  readonly trust: UpstreamTrust;
  readonly store: CertStore;
  private readonly keptStore: boolean;
  private handedOn = false;

  constructor(
    private readonly config: Pick<Config, "certs" | "proxy">,
    private readonly log: Logger,
    private readonly previous?: TlsPart,
  ) {
    this.trust = upstreamTrust(config.certs);
    this.keptStore = previous !== undefined && previous.config.certs === config.certs;
    this.store = this.keptStore && previous ? previous.store : new CertStore(config.certs, log, () => this.minter);
  }

  async prepare(): Promise<void> {
    const dir = this.config.certs;
    if (OfficeCa.exists(dir)) {
      // A CA that is there but broken (unreadable key, wrong permissions, expired) is an error even
      // when nothing is intercepted: it would fail on the first blocked HTTPS site otherwise.
      this.ca = OfficeCa.load(dir);
      const before = this.previous?.ca;
      this.minter = before && before.cert.fingerprint256 === this.ca.cert.fingerprint256 ? this.previous?.minter : undefined;
      this.minter ??= new LeafMinter(this.ca);
    } else if (this.config.proxy.intercept.length > 0) {
      throw new CaError(
        "GH_CA_MISSING",
        `proxy.intercept is set, but there is no office CA in ${dir}; create it with: npx gatehouse ca init (then install ${dir}/ca.crt in the office browsers)`,
      );
    }
    for (const p of this.trust.problems) this.log.warn({ file: p.file, code: p.code }, `${p.file}: ${p.message}`);
    // A bad pair is logged and keeps its last good version; it never stops the rest.
    if (!this.keptStore) this.store.load();
  }

  commit(): void {
    if (this.keptStore && this.previous) this.previous.handedOn = true;
    else this.store.watch();
  }

  async abort(): Promise<void> {
    if (!this.keptStore) await this.store.close();
  }

  async dispose(): Promise<void> {
    if (!this.handedOn) await this.store.close();
  }
}

/** Every TLS problem `gatehouse check` reports: the CA, the fronts' pairs, certs/upstream-ca. */
export function checkTls(config: Pick<Config, "certs" | "proxy">): { problems: Diagnostic[]; summary: string[] } {
  const problems: Diagnostic[] = [];
  const summary: string[] = [];
  const dir = config.certs;
  if (OfficeCa.exists(dir)) {
    try {
      const ca = OfficeCa.load(dir);
      summary.push(`${ca.certFile}: office CA, valid until ${ca.summary().notAfter.slice(0, 10)}`);
    } catch (err) {
      // The message names its file already ("certs/ca.key: ..."): keep it whole.
      const [file = dir, ...rest] = (err as Error).message.split(": ");
      problems.push({ file, line: 0, code: err instanceof CaError ? err.code : "GH_CA_INVALID", message: rest.join(": ") });
    }
  } else if (config.proxy.intercept.length > 0) {
    problems.push({
      file: `${dir}/ca.crt`,
      line: 0,
      code: "GH_CA_MISSING",
      message: "proxy.intercept is set but there is no office CA; create it with: npx gatehouse ca init",
    });
  }
  const store = new CertStore(dir, undefined, () => undefined);
  problems.push(...store.load());
  for (const p of store.pairs()) summary.push(`${p.file}: ${p.names.join(", ")} (until ${p.notAfter.slice(0, 10)})`);
  problems.push(...upstreamTrust(dir).problems);
  return { problems, summary };
}
