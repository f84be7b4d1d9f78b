import type { Config } from "../config/schema.js";
import { AddressSet } from "../net/address.js";
import type { SelfEndpoints } from "../net/self.js";
import { compose, type Handler, type Stage } from "../pipeline/stage.js";
import type { RuleSet } from "../rules/ruleset.js";
import type { FrontTarget, HttpExchange, HttpOutcome, HttpResponse } from "./exchange.js";
import type { PageMaker } from "./pages.js";
import { accessStage } from "./stages/access.js";
import { maxForwardsStage } from "./stages/max-forwards.js";
import { policyStage } from "./stages/policy.js";
import { type FrontRouter, routeStage } from "./stages/route.js";
import { type LocalRoute, selfStage } from "./stages/self.js";
import { targetStage } from "./stages/target.js";
import type { FetchOptions } from "./upstream.js";

type HttpStage = Stage<HttpExchange, HttpOutcome>;

export interface ChainParts {
  cfg: Config["proxy"];
  rules: () => RuleSet;
  page: PageMaker;
  self: SelfEndpoints;
  /** The cache stage, when the chain's requests may be cached. */
  cache?: HttpStage;
  /** Pages served at the proxy's own address (PAC, CA download), by path. */
  routes?: readonly LocalRoute[];
  /** True when gatehouse can answer TLS itself (the office CA exists). */
  localTls?: () => boolean;
}

/** What fetches for a chain: the origin pools (Upstream). */
export interface Backend {
  fetch(x: HttpExchange, opts: FetchOptions): Promise<HttpResponse>;
}

/**
 * The stages of every HTTP chain, in one place, split into those that decide (run by `explain`
 * too, so it always says what the serving process does) and those that serve.
 *
 * forward: browsers configured with the proxy; absolute-form targets and CONNECT.
 *   1. target: framing, Host, the URL; first, because nothing else can read a request without it.
 *   2. self: the proxy's own address (a browser opening it, a URL or tunnel naming a listener of
 *      ours) is answered here, before anything could forward it back into gatehouse.
 *   3. access: office ranges, CONNECT ports, loopback destinations, loops; before the rules, so an
 *      outsider learns nothing about them and costs no more than a set lookup.
 *   4. max-forwards: OPTIONS/TRACE with Max-Forwards: 0 are this hop's to answer.
 *   5. policy (firewall, then lists): before the cache, so a stored copy is never served to a
 *      client the rules now refuse.
 *   6. cache: only allowed requests reach it; a miss goes on to the origin.
 *   terminal: CONNECT becomes a tunnel; everything else goes to the origin.
 *
 * intercept: requests decrypted from an intercepted CONNECT; origin-form, the tunnel names the site.
 *   1. target: the authority comes from the tunnel; a request for another site on it gets 421, so
 *      a Host header cannot reach a site the CONNECT was not checked for.
 *   2. self: a tunnel to gatehouse itself carries requests for its own pages (the CA check).
 *   3. access: the CONNECT passed it, but a reload may have narrowed proxy.clients since the tunnel
 *      opened, and loops are cheap to catch.
 *   4. max-forwards, 5. policy (now with path and method, which HTTPS hid before), 6. cache (keyed
 *      by the https URL): as for forward.
 *   terminal: the origin, over verified TLS.
 *
 * front: the office's own sites, published to the internet; the client's Host is kept.
 *   1. target: the authority is the client's Host.
 *   2. route: the front that serves that Host (421 for any other name); before the rules, so a
 *      stranger's Host costs nothing and reaches nothing.
 *   3. policy: the firewall alone may allow or deny front clients by address, path and method; no
 *      access stage and no lists, because fronts serve any address by default.
 *   4. cache: only for fronts configured with one.
 *   terminal: the front's backends (healthy ones only), Host unchanged.
 */
export function forwardStages(p: ChainParts): { decide: HttpStage[]; serve: HttpStage[] } {
  return {
    decide: [
      targetStage({ maxUrlLength: p.cfg.limits.maxUrlLength, page: p.page }),
      selfStage({ self: p.self, page: p.page, name: p.cfg.name, routes: p.routes, localTls: p.localTls }),
      officeAccess(p),
      maxForwardsStage(),
      policyStage(p.rules, p.page),
    ],
    serve: p.cache ? [p.cache] : [],
  };
}

export function interceptStages(p: ChainParts): { decide: HttpStage[]; serve: HttpStage[] } {
  return {
    decide: [
      targetStage({ maxUrlLength: p.cfg.limits.maxUrlLength, page: p.page }),
      selfStage({ self: p.self, page: p.page, name: p.cfg.name, routes: p.routes }),
      officeAccess(p),
      maxForwardsStage(),
      policyStage(p.rules, p.page),
    ],
    serve: p.cache ? [p.cache] : [],
  };
}

export function frontStages(p: ChainParts, router: FrontRouter): { decide: HttpStage[]; serve: HttpStage[] } {
  return {
    decide: [
      targetStage({ maxUrlLength: p.cfg.limits.maxUrlLength, page: p.page }),
      routeStage({ router, page: p.page }),
      policyStage(p.rules, p.page, { lists: false }),
    ],
    serve: [frontCache],
  };
}

/** A front's own cache stage, when it has one (its Cache-Status names the front). */
const frontCache: HttpStage = {
  name: "cache",
  handle: (x, next) => (x.front?.cache ? x.front.cache.handle(x, next) : next(x)),
};

function officeAccess(p: ChainParts): HttpStage {
  return accessStage({
    clients: new AddressSet(p.cfg.clients),
    connectPorts: p.cfg.connectPorts,
    name: p.cfg.name,
    page: p.page,
  });
}

export function forwardChain(p: ChainParts, upstream: Backend): Handler<HttpExchange, HttpOutcome> {
  const { decide, serve } = forwardStages(p);
  return compose([...decide, ...serve], (x) => {
    if (x.connect) return Promise.resolve({ kind: "tunnel", host: x.host, port: x.port });
    return upstream.fetch(x, { maxForwards: decrementedMaxForwards(x) });
  });
}

export function interceptChain(p: ChainParts, upstream: Backend): Handler<HttpExchange, HttpOutcome> {
  const { decide, serve } = interceptStages(p);
  return compose([...decide, ...serve], (x) => upstream.fetch(x, { maxForwards: decrementedMaxForwards(x) }));
}

export function frontChain(p: ChainParts, router: FrontRouter): Handler<HttpExchange, HttpOutcome> {
  const { decide, serve } = frontStages(p, router);
  // The route stage chose the front; only requests it passed reach here.
  return compose([...decide, ...serve], (x) => (x.front as FrontTarget).fetch(x, { maxForwards: decrementedMaxForwards(x) }));
}

/** What the deciding stages let through reaches this instead of a cache or an origin. */
export const PASSED: HttpResponse = { kind: "response", status: 0, headers: [], body: null };

/** The deciding stages of a chain, ending in PASSED: what `explain` runs. */
export function decisionChain(stages: { decide: HttpStage[] }): Handler<HttpExchange, HttpOutcome> {
  return compose(stages.decide, () => Promise.resolve(PASSED));
}

function decrementedMaxForwards(x: HttpExchange): number | undefined {
  if (x.method !== "OPTIONS" && x.method !== "TRACE") return undefined;
  const raw = x.headers["max-forwards"];
  if (typeof raw !== "string" || !/^\s*\d+\s*$/.test(raw)) return undefined;
  return Number(raw) - 1;
}
