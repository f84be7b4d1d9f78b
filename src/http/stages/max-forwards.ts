import type { Stage } from "../../pipeline/stage.js";
import type { HttpExchange, HttpOutcome, HttpResponse } from "../exchange.js";

/** What this proxy answers to OPTIONS addressed to itself: the methods it relays. */
export function optionsAnswer(): HttpResponse {
  return {
    kind: "response",
    status: 200,
    headers: [
      ["allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, CONNECT"],
      ["content-length", "0"],
    ],
    body: null,
  };
}

/** RFC 9110 §7.6.2: OPTIONS and TRACE with Max-Forwards: 0 are answered here, not forwarded. */
export function maxForwardsStage(): Stage<HttpExchange, HttpOutcome> {
  return {
    name: "max-forwards",
    handle(x, next) {
      if (x.method !== "OPTIONS" && x.method !== "TRACE") return next(x);
      const raw = x.headers["max-forwards"];
      if (typeof raw !== "string" || !/^\s*\d+\s*$/.test(raw)) return next(x);
      if (Number(raw) > 0) return next(x);
      x.decisions.push({ stage: "max-forwards", action: "answer", reason: "Max-Forwards: 0" });
      x.log.cache = "TCP_MISS";
      x.log.hierarchy = "HIER_NONE";
      if (x.method === "OPTIONS") return Promise.resolve(optionsAnswer());
      // TRACE echoes the request as received, less what could leak credentials (RFC 9110 §9.3.8).
      const lines = [`TRACE ${x.url.href} HTTP/${x.httpVersion}`];
      for (let i = 0; i < x.rawHeaders.length; i += 2) {
        const name = x.rawHeaders[i] as string;
        if (/^(authorization|proxy-authorization|cookie)$/i.test(name)) continue;
        lines.push(`${name}: ${x.rawHeaders[i + 1]}`);
      }
      const body = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
      return Promise.resolve({
        kind: "response",
        status: 200,
        headers: [
          ["content-type", "message/http"],
          ["content-length", String(body.length)],
        ],
        body,
      });
    },
  };
}
