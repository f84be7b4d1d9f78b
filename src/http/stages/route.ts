import type { Stage } from "../../pipeline/stage.js";
import type { FrontTarget, HttpExchange, HttpOutcome } from "../exchange.js";
import type { PageMaker } from "../pages.js";

/** The fronts sharing a listener, by the names they serve. */
export interface FrontRouter {
  /** The front serving a host name (exact, then a one-label wildcard), if any. */
  find(host: string): FrontTarget | undefined;
}

/**
 * Which of the fronts on this listener a request is for, from its Host: a name no front serves gets
 * a plain 421 (never some other site, never a backend), and over TLS the Host must belong to the
 * same front as the name the client gave in its handshake (SNI), or the request could reach a site
 * whose certificate the client never saw. An http front set to redirect sends clients to https.
 */
export function routeStage(opts: { router: FrontRouter; page: PageMaker }): Stage<HttpExchange, HttpOutcome> {
  return {
    name: "route",
    handle(x, next) {
      const front = opts.router.find(x.host);
      const misdirected = (message: string) => {
        x.log.cache = "NONE_NONE";
        x.decisions.push({ stage: "route", action: "deny", reason: message });
        return Promise.resolve(opts.page(x, { status: 421, title: "Misdirected request", message }));
      };
      if (!front) return misdirected(`This address serves no site named ${x.host}.`);
      const sni = x.sni;
      if (sni && sni !== x.host && opts.router.find(sni) !== front)
        return misdirected(`This connection was opened for ${sni}; a request for ${x.host} cannot be sent on it.`);
      x.front = front;
      if (front.redirectToHttps) {
        const location = front.httpsLocation(x.url);
        x.decisions.push({ stage: "route", action: "answer", reason: "redirect to https" });
        x.log.cache = "NONE_NONE";
        return Promise.resolve({
          kind: "response",
          // 308 keeps the method and body (RFC 9110 §15.4.9); browsers follow it like 301.
          status: 308,
          headers: [
            ["location", location],
            ["content-length", "0"],
            ["cache-control", "max-age=3600"],
          ],
          body: null,
        });
      }
      return next(x);
    },
  };
}
