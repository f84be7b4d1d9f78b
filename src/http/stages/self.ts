import type { SelfEndpoints } from "../../net/self.js";
import type { Stage } from "../../pipeline/stage.js";
import type { HttpExchange, HttpOutcome, HttpResponse } from "../exchange.js";
import type { PageMaker } from "../pages.js";
import { optionsAnswer } from "./max-forwards.js";

/**
 * A page the proxy serves at its own address, by path: the PAC file, the CA certificate. Each part
 * that has one contributes it; the self stage only looks them up.
 */
export interface LocalRoute {
  /** Exact path, "/proxy.pac". */
  path: string;
  handle(x: HttpExchange): HttpResponse | Promise<HttpResponse>;
}

/**
 * Requests for the proxy itself: its own address opened in a browser (origin-form), an absolute URL
 * or a tunnel naming one of gatehouse's own listeners. Answered here, never forwarded: forwarding
 * them would loop back into gatehouse (tunnels nested five deep, once).
 */
export function selfStage(opts: {
  self: SelfEndpoints;
  page: PageMaker;
  name: string;
  routes?: readonly LocalRoute[];
  /** True when gatehouse can answer TLS itself (the office CA exists): its pages over HTTPS. */
  localTls?: () => boolean;
}): Stage<HttpExchange, HttpOutcome> {
  const routes = new Map((opts.routes ?? []).map((r) => [r.path, r]));
  return {
    name: "self",
    handle(x, next) {
      if (x.connect) {
        if (!opts.self.matches(x.host, x.port)) return next(x);
        if (opts.localTls?.()) {
          x.decisions.push({ stage: "self", action: "answer", reason: "tunnel to gatehouse's own pages" });
          return Promise.resolve({ kind: "tunnel", host: x.host, port: x.port, local: true });
        }
        x.decisions.push({ stage: "self", action: "deny", reason: "tunnel to one of gatehouse's own listeners" });
        x.log.cache = "TCP_DENIED";
        return Promise.resolve(
          opts.page(x, {
            status: 403,
            title: "Destination not allowed",
            message: `${x.host}:${x.port} is one of ${opts.name}'s own listeners; a tunnel to it would loop back into the proxy.`,
          }),
        );
      }
      if (!x.toSelf && !opts.self.matches(x.host, x.port)) return next(x);
      x.log.cache = "NONE_NONE";
      x.decisions.push({ stage: "self", action: "answer", reason: "request for the proxy itself" });
      if (x.target === "*") return Promise.resolve(optionsAnswer());
      const route = routes.get(x.url.pathname);
      return Promise.resolve(route ? route.handle(x) : infoPage(x, opts));
    },
  };
}

function infoPage(x: HttpExchange, opts: { page: PageMaker; name: string }): HttpResponse {
  return opts.page(x, {
    status: 200,
    title: `${opts.name}: the office web proxy`,
    message: `This address is the office's web proxy (${opts.name}). It is not a web site: set it as the HTTP and HTTPS proxy in your browser or system settings, and pages will load through it.`,
    details: [`Proxy: ${typeof x.headers.host === "string" ? x.headers.host : "this address"}`],
  });
}
