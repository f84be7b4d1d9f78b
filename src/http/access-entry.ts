import type { AccessEvent } from "../events/events.js";
import type { HttpExchange } from "./exchange.js";

/**
 * The one place an access event is made from an exchange, for plain requests and tunnels alike.
 * The deciding entry is the last decision that settled something (a block, a deny, an allow by a
 * rule); the log shows its rule.
 */
export function accessEvent(x: HttpExchange, timing: { start: number; t0: number }, status: number, bytes: number): AccessEvent {
  // The whole URL, also for origin-form requests (intercepted, fronts); CONNECT keeps host:port,
  // and a request refused before its URL was known keeps what the client sent.
  const url = x.connect || x.url === undefined ? x.target : x.url.href;
  return {
    start: timing.start,
    durationMs: performance.now() - timing.t0,
    client: x.client.address,
    listener: x.ctx.listener,
    result: x.log.cache,
    status,
    bytes,
    method: x.method,
    url,
    hierarchy: x.log.hierarchy,
    peer: x.log.peer,
    contentType: x.log.contentType,
    id: x.id,
    decision: x.decisions[x.decisions.length - 1],
    user: x.identity?.user,
  };
}
