import type { Config } from "../config/schema.js";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import { CaError, OfficeCa } from "./ca.js";
import { LeafMinter } from "./leaf.js";
import { type UpstreamTrust, upstreamTrust } from "./trust.js";

/**
 * The TLS material of one generation: the office CA and its leaf minter (when certs/ has a CA),
 * and the roots upstream certificates are verified against. A reload that keeps the same CA keeps
 * the minter, and with it every leaf minted so far.
 */
export class TlsPart implements Part {
  readonly name = "certs";
  ca: OfficeCa | undefined;
  minter: LeafMinter | undefined;
  /** Read when the generation is built: the origin pools are made with it. */
  readonly trust: UpstreamTrust;

  constructor(
    private readonly config: Pick<Config, "certs" | "proxy">,
    private readonly log: Logger,
    private readonly previous?: TlsPart,
  ) {
    this.trust = upstreamTrust(config.certs);
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
  }

  commit(): void {}

  async abort(): Promise<void> {}

  async dispose(): Promise<void> {}
}
