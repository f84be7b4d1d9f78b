import type { FrontRouter } from "../../http/stages/route.js";
import type { WebFront } from "./front.js";

/** The fronts on one listener by the names they serve: exact names first, then "*.x" for one label. */
export class Router implements FrontRouter {
  private readonly exact = new Map<string, WebFront>();
  private readonly wildcard = new Map<string, WebFront>();

  constructor(fronts: readonly WebFront[]) {
    for (const f of fronts) {
      for (const h of f.cfg.hosts) {
        if (h.startsWith("*.")) this.wildcard.set(h.slice(2), f);
        else this.exact.set(h, f);
      }
    }
  }

  find(host: string): WebFront | undefined {
    const name = host.toLowerCase();
    const exact = this.exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf(".");
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}
