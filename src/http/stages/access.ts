import type { AddressSet } from "../../net/address.js";
import { isLoopbackHost } from "../../net/lookup.js";
import type { Stage } from "../../pipeline/stage.js";
import type { HttpExchange, HttpOutcome } from "../exchange.js";
import { viaNames } from "../headers.js";
import type { PageMaker, PageText } from "../pages.js";

/**
 * Who may use the proxy and where it may go, before any rule file is consulted: the office ranges
 * (never an open proxy), CONNECT ports, loopback destinations for local clients only, and loops.
 */
export function accessStage(opts: {
  clients: AddressSet;
  connectPorts: readonly number[];
  name: string;
  page: PageMaker;
}): Stage<HttpExchange, HttpOutcome> {
  const ports = new Set(opts.connectPorts);
  const deny = (x: HttpExchange, reason: string, page: PageText) => {
    x.decisions.push({ stage: "access", action: "deny", reason });
    x.log.cache = "TCP_DENIED";
    return Promise.resolve(opts.page(x, page));
  };
  return {
    name: "access",
    handle(x, next) {
      if (!x.client.unknown && !opts.clients.has(x.client.address)) {
        return deny(x, "client not in proxy.clients", {
          status: 403,
          title: "Access denied",
          message: `This proxy serves the office network only; your address ${x.client.address} is not in proxy.clients.`,
        });
      }
      if (x.connect && !ports.has(x.port)) {
        return deny(x, `CONNECT port ${x.port} not in proxy.connectPorts`, {
          status: 403,
          title: "Port not allowed",
          message: `Tunnels (CONNECT) may only go to port ${[...ports].join(", ")}; ${x.host}:${x.port} was asked for.`,
        });
      }
      if (!x.client.loopback && isLoopbackHost(x.host)) {
        return deny(x, "loopback destination from a non-local client", {
          status: 403,
          title: "Destination not allowed",
          message: `${x.host} is this appliance's own loopback address, which only local clients may reach.`,
        });
      }
      if (viaNames(x.headers.via, opts.name)) {
        return deny(x, "forwarding loop", {
          status: 508,
          title: "Forwarding loop detected",
          message: `This request has already passed through ${opts.name}; forwarding it again would loop.`,
          details: ["Check that the proxy is not configured as its own upstream and that its name is unique."],
        });
      }
      return next(x);
    },
  };
}
