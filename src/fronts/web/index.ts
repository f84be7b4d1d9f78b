import type { AddressInfo } from "node:net";
import type { SecureContext } from "node:tls";
import type { FrontConfig } from "../../config/fronts-schema.js";
import type { Config } from "../../config/schema.js";
import type { Activity } from "../../http/activity.js";
import { type ChainParts, decisionChain, frontChain, frontStages } from "../../http/chains.js";
import { HttpListeners } from "../../http/listener.js";
import { HttpService } from "../../http/service.js";
import type { Part } from "../../lifecycle/part.js";
import { type ListenAddress, parseListen } from "../../net/address.js";
import type { FrontCertificates, FrontPart } from "../types.js";
import { WebFront, type WebFrontDeps } from "./front.js";
import { Router } from "./router.js";
import { relayUpgrade } from "./upgrade.js";

export interface WebFrontsDeps extends WebFrontDeps {
  cfg: Config["proxy"];
  chain: ChainParts;
  certs: () => FrontCertificates;
  activity: Activity;
  handshakeTimeoutMs: number;
}

/**
 * Every http and https front of a config: one listener per distinct address, shared by the fronts
 * that list it and routed by Host (and SNI), each into the front chain. A reload keeps the sockets
 * of addresses that stay and what is known of each backend's health.
 */
export class WebFronts implements FrontPart {
  readonly name = "fronts";
  readonly fronts: string[];
  private readonly byName = new Map<string, WebFront>();
  private readonly listeners: { key: string; part: HttpListeners; https: boolean; router: Router }[] = [];

  private readonly certs: () => FrontCertificates;

  constructor(configs: readonly FrontConfig[], deps: WebFrontsDeps, previous: WebFronts | undefined) {
    this.fronts = configs.map((c) => c.name);
    this.certs = deps.certs;
    for (const c of configs) this.byName.set(c.name, new WebFront(c, deps, previous?.byName.get(c.name)));
    const byAddress = new Map<string, { addr: ListenAddress; fronts: WebFront[]; index: number }>();
    configs.forEach((c, index) => {
      for (const text of c.listen) {
        const addr = parseListen(text) as ListenAddress;
        const key = `${addr.host ?? "*"}:${addr.port}`;
        const entry = byAddress.get(key) ?? { addr, fronts: [], index };
        entry.fronts.push(this.byName.get(c.name) as WebFront);
        byAddress.set(key, entry);
      }
    });
    for (const [key, { addr, fronts, index }] of byAddress) {
      const router = new Router(fronts);
      const https = fronts[0]?.cfg.protocol === "https";
      const service = new HttpService({
        chain: frontChain(deps.chain, router),
        page: deps.chain.page,
        limits: deps.cfg.limits,
        upgrade: (req, socket, head, ctx) =>
          relayUpgrade(
            {
              decide: decisionChain(frontStages(deps.chain, router)),
              page: deps.chain.page,
              via: deps.cfg.name,
              idleMs: deps.cfg.limits.tunnelIdleTimeout,
              connectTimeoutMs: deps.cfg.upstream.connectTimeout,
              events: deps.events,
              log: deps.log,
              activity: deps.activity,
            },
            req,
            socket,
            head,
            ctx,
          ),
        events: deps.events,
        log: deps.log,
        activity: deps.activity,
      });
      const part = new HttpListeners({
        key: `fronts[${index}].listen`,
        label: `front ${fronts.map((f) => f.name).join(",")}`,
        kind: "front",
        listen: [addr],
        limits: deps.cfg.limits,
        handlers: service,
        activity: deps.activity,
        tls: https
          ? {
              contextFor: (sni) => certificateFor(router, deps.certs(), sni),
              defaultContext: () => defaultCertificate(fronts, deps.certs()),
              handshakeTimeoutMs: deps.handshakeTimeoutMs,
            }
          : undefined,
        previous: previous?.listeners.find((l) => l.key === key)?.part,
      });
      this.listeners.push({ key, part, https, router });
    }
    for (const f of this.byName.values()) if (f.cfg.protocol === "http") f.httpsPort = (host) => this.httpsPort(host);
  }

  /** The port of an https front serving `host`: 443 if one listens there, else the first one's, as bound. */
  private httpsPort(host: string): number | undefined {
    const ports = this.listeners
      .filter((l) => l.https && l.router.find(host) !== undefined)
      .flatMap((l) => l.part.addresses.map((a) => a.port));
    return ports.includes(443) ? 443 : ports[0];
  }

  private get parts(): Part[] {
    return this.listeners.map((l) => l.part);
  }

  async prepare(): Promise<void> {
    for (const f of this.byName.values()) {
      const cert = f.cfg.tls.cert;
      if (cert && !this.certs().named(cert))
        throw new Error(
          `front ${f.name}: tls.cert names ${cert}, but certs/ has no usable ${cert}.crt and ${cert}.key (gatehouse check says why)`,
        );
    }
    const results = await Promise.allSettled(this.parts.map((p) => p.prepare()));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  commit(): void {
    for (const p of this.parts) p.commit();
    for (const f of this.byName.values()) f.start();
  }

  async abort(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.abort()));
    await Promise.all([...this.byName.values()].map((f) => f.close()));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.dispose()));
    await Promise.all([...this.byName.values()].map((f) => f.close()));
  }

  stopAccepting(): Promise<void> {
    return Promise.all(this.listeners.map((l) => l.part.stopAccepting())).then(() => {});
  }

  get addresses(): AddressInfo[] {
    return this.listeners.flatMap((l) => l.part.addresses);
  }

  health() {
    return [...this.byName.values()].map((f) => ({ front: f.name, backends: f.backends.status() }));
  }
}

/**
 * The certificate for a name: the front's own pair if it names one, else by SNI from certs/. A
 * name no front on this listener serves gets none (the handshake fails, as nginx's
 * ssl_reject_handshake does): the office CA mints no certificate for whatever a stranger asks.
 */
function certificateFor(router: Router, certs: FrontCertificates, sni: string): SecureContext | undefined {
  const front = router.find(sni);
  if (!front) return undefined;
  const named = front.cfg.tls.cert ? certs.named(front.cfg.tls.cert) : undefined;
  return named?.context ?? certs.contextFor(sni);
}

/** For clients that send no SNI: the first front of the listener, by its pair or its first plain name. */
function defaultCertificate(fronts: readonly WebFront[], certs: FrontCertificates): SecureContext | undefined {
  const first = fronts[0];
  if (!first) return undefined;
  if (first.cfg.tls.cert) return certs.named(first.cfg.tls.cert)?.context;
  const name = first.cfg.hosts.find((h) => !h.startsWith("*."));
  return name ? certs.contextFor(name) : undefined;
}
