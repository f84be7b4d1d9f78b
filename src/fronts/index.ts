import type { AddressInfo } from "node:net";
import { TCP_PROTOCOLS, WEB_PROTOCOLS } from "../config/fronts-schema.js";
import type { Config } from "../config/schema.js";
import type { Part } from "../lifecycle/part.js";
import type { BackendStatus } from "./health.js";
import { TCP_FRONTS } from "./tcp.js";
import type { FrontDeps, FrontPart } from "./types.js";
import { WebFronts, type WebFrontsDeps } from "./web/index.js";

const isWeb = (p: string) => (WEB_PROTOCOLS as readonly string[]).includes(p);
const isTcp = (p: string): p is (typeof TCP_PROTOCOLS)[number] => (TCP_PROTOCOLS as readonly string[]).includes(p);

/**
 * The `fronts` of one config as one part: the web fronts (sharing listeners by Host), and one part
 * per FTP or mail front. A reload hands each its predecessor (the same name), so sockets of
 * addresses that stay and what is known of backend health carry over.
 */
export class Fronts implements Part {
  readonly name = "fronts";
  readonly web: WebFronts | undefined;
  private readonly tcp = new Map<string, FrontPart>();

  constructor(configs: Config["fronts"], deps: WebFrontsDeps & FrontDeps, previous?: Fronts) {
    const web = configs.filter((f) => isWeb(f.protocol));
    this.web = web.length > 0 ? new WebFronts(web, deps, previous?.web) : undefined;
    for (const f of configs) {
      if (!isTcp(f.protocol)) continue;
      this.tcp.set(f.name, TCP_FRONTS[f.protocol](f, deps, previous?.tcp.get(f.name)));
    }
  }

  private get parts(): FrontPart[] {
    return [...(this.web ? [this.web] : []), ...this.tcp.values()];
  }

  async prepare(): Promise<void> {
    const results = await Promise.allSettled(this.parts.map((p) => p.prepare()));
    const failed = results.find((r) => r.status === "rejected");
    if (!failed) return;
    await Promise.allSettled(this.parts.map((p) => p.abort()));
    throw (failed as PromiseRejectedResult).reason;
  }

  commit(): void {
    for (const p of this.parts) p.commit();
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.parts.map((p) => p.abort()));
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.parts.map((p) => p.dispose()));
  }

  stopAccepting(): Promise<void> {
    return Promise.all(this.parts.map((p) => p.stopAccepting())).then(() => {});
  }

  get addresses(): AddressInfo[] {
    return this.parts.flatMap((p) => p.addresses);
  }

  health(): { front: string; backends: BackendStatus[] }[] {
    return this.parts.flatMap((p) => p.health());
  }
}
