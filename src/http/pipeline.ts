import type { Config } from "../config/schema.js";
import { AddressSet } from "../net/address.js";
import { compose, type Handler, type Stage } from "../pipeline/stage.js";
import type { HttpExchange, HttpOutcome } from "./exchange.js";
import { makePage } from "./proxy-server.js";
import { accessStage } from "./stages/access.js";
import { maxForwardsStage } from "./stages/max-forwards.js";
import type { Upstream } from "./upstream.js";

export interface HttpPipelineDeps {
  cfg: Config["proxy"];
  upstream: Upstream;
  /** Stages contributed by other parts (rules, cache), in the order given by their position below. */
  policy?: readonly Stage<HttpExchange, HttpOutcome>[];
  cache?: Stage<HttpExchange, HttpOutcome>;
}

/**
 * The order of the HTTP stages, in one place:
 * 1. access: office ranges, CONNECT ports, loopback and loops; first, so that an outsider learns
 *    nothing about the rules and costs nothing more than a set lookup.
 * 2. max-forwards: OPTIONS/TRACE with Max-Forwards: 0 are answered by this hop itself.
 * 3. policy (firewall, then blocklist): before the cache, so a cached object is never served to a
 *    client that the rules now refuse.
 * 4. cache: only allowed requests reach it; a miss goes on to the origin.
 * Terminal: CONNECT becomes a tunnel outcome for the listener; everything else goes to the origin.
 */
export function buildHttpPipeline(deps: HttpPipelineDeps): Handler<HttpExchange, HttpOutcome> {
  const stages: Stage<HttpExchange, HttpOutcome>[] = [
    accessStage({
      clients: new AddressSet(deps.cfg.clients),
      connectPorts: deps.cfg.connectPorts,
      name: deps.cfg.name,
      page: makePage(deps.cfg),
    }),
    maxForwardsStage(),
    ...(deps.policy ?? []),
    ...(deps.cache ? [deps.cache] : []),
  ];
  return compose(stages, (x) => {
    if (x.connect) return Promise.resolve({ kind: "tunnel", host: x.host, port: x.port });
    return deps.upstream.fetch(x, decrementedMaxForwards(x));
  });
}

function decrementedMaxForwards(x: HttpExchange): number | undefined {
  if (x.method !== "OPTIONS" && x.method !== "TRACE") return undefined;
  const raw = x.headers["max-forwards"];
  if (typeof raw !== "string" || !/^\s*\d+\s*$/.test(raw)) return undefined;
  return Number(raw) - 1;
}
