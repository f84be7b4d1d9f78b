import type { Stage } from "../../pipeline/stage.js";
import type { HttpExchange, HttpOutcome } from "../exchange.js";
import type { PageMaker, PageText } from "../pages.js";

const AUTHORITY = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/?#@[\]]+)):(\d{1,5})$/;

/**
 * The request-target and the fields that frame it, checked once for every listener kind, and
 * turned into the absolute URL every later stage uses. Where the authority comes from depends on
 * the listener kind: the absolute-form target (forward proxy), the tunnel (intercepted HTTPS), or
 * the Host field (fronts). Origin-form on the forward proxy is a request for the proxy itself and
 * is marked so for the self stage.
 */
export function targetStage(opts: { maxUrlLength: number; page: PageMaker }): Stage<HttpExchange, HttpOutcome> {
  return {
    name: "target",
    handle(x, next) {
      const problem = check(x, opts.maxUrlLength);
      if (problem) {
        x.log.cache = "NONE_NONE";
        x.decisions.push({ stage: "target", action: "deny", reason: problem.message });
        const out = opts.page(x, problem);
        if (problem.close) out.close = true;
        return Promise.resolve(out);
      }
      return next(x);
    },
  };
}

type Problem = PageText & { close?: boolean };

const bad = (message: string, details?: string[]): Problem => ({ status: 400, title: "Bad request", message, details });

function check(x: HttpExchange, maxUrlLength: number): Problem | undefined {
  const te = x.headers["transfer-encoding"];
  if (te !== undefined && (x.httpVersion === "1.0" || typeof te !== "string" || te.trim().toLowerCase() !== "chunked")) {
    // Only plain chunked framing is unambiguous; anything else is how smuggling starts (RFC 9112 §6.1).
    return {
      status: x.httpVersion === "1.0" ? 400 : 501,
      title: "Unsupported transfer coding",
      message: `Transfer-Encoding "${String(te).slice(0, 100)}" is not accepted; send the body with Content-Length or plain chunked coding.`,
      close: true,
    };
  }
  if (x.target.length > maxUrlLength) {
    return {
      status: 414,
      title: "Address too long",
      message: `The requested address is ${x.target.length} bytes long; this proxy accepts up to ${maxUrlLength}.`,
    };
  }
  const hosts = hostLines(x.rawHeaders);
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (CONNECT names its authority in the target).
  if (hosts > 1) return { ...bad("The request has more than one Host header field."), close: true };
  if (hosts === 0 && x.httpVersion !== "1.0" && !x.connect) return bad("An HTTP/1.1 request must carry a Host header field.");

  if (x.connect) {
    const m = AUTHORITY.exec(x.target);
    if (!m) return bad("CONNECT needs a target of the form host:port.");
    const host = (m[1] ?? m[2] ?? "").toLowerCase();
    const port = Number(m[3]);
    if (port < 1 || port > 65535) return bad(`CONNECT port ${port} is out of range.`);
    x.host = host;
    x.port = port;
    x.url = new URL(`https://${m[1] ? `[${host}]` : host}:${port}/`);
    return undefined;
  }

  const origin = x.target.startsWith("/") || x.target === "*";
  const ctx = x.ctx;
  let url: URL;
  if (origin) {
    let authority: string;
    if (ctx.kind === "forward") {
      // Someone opened the proxy's own address: the self stage answers it.
      url = new URL(`http://${bracket(ctx.local.address)}:${ctx.local.port}/`);
      if (x.target !== "*") url = new URL(x.target, url);
      return setUrl(x, url, true);
    }
    if (ctx.kind === "intercept") {
      const a = ctx.authority as { host: string; port: number };
      authority = `${bracket(a.host)}:${a.port}`;
    } else {
      const host = x.headers.host;
      if (typeof host !== "string" || host === "") return bad("The request has no Host header field, so it names no site.");
      authority = host;
    }
    try {
      url = new URL(`${ctx.scheme}://${authority}${x.target === "*" ? "/" : x.target}`);
    } catch {
      return bad(`"${authority.slice(0, 100)}" is not a valid host.`);
    }
    if (ctx.kind === "intercept" && !sameHost(x.headers.host, url)) {
      return {
        status: 421,
        title: "Misdirected request",
        message: `This connection is for ${url.host}; a request for another site (${String(x.headers.host).slice(0, 100)}) cannot be sent on it.`,
      };
    }
    return setUrl(x, url, false);
  }
  try {
    url = new URL(x.target);
  } catch {
    return bad("The request target is not a valid absolute URL.", [
      "Configure the browser to use this address as its HTTP proxy.",
    ]);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return {
      status: 400,
      title: "Unsupported scheme",
      message: `This proxy fetches http:// and https:// addresses; ${url.protocol}// is not supported.`,
    };
  }
  if (url.username || url.password) return bad("Addresses with a user name or password in them are not forwarded.");
  if (ctx.kind === "intercept") {
    const a = ctx.authority as { host: string; port: number };
    if (url.protocol !== "https:" || stripBrackets(url.hostname) !== a.host || portOf(url) !== a.port) {
      return {
        status: 421,
        title: "Misdirected request",
        message: `This connection is for ${a.host}:${a.port}; ${url.origin} cannot be requested on it.`,
      };
    }
  }
  return setUrl(x, url, false);
}

function setUrl(x: HttpExchange, url: URL, toSelf: boolean): undefined {
  x.url = url;
  x.host = stripBrackets(url.hostname);
  x.port = portOf(url);
  x.toSelf = toSelf;
  return undefined;
}

function hostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === "host") n++;
  }
  return n;
}

function sameHost(host: string | string[] | undefined, url: URL): boolean {
  if (typeof host !== "string") return true;
  try {
    const h = new URL(`${url.protocol}//${host}`);
    return h.hostname === url.hostname && portOf(h) === portOf(url);
  } catch {
    return false;
  }
}

const stripBrackets = (h: string) => (h.startsWith("[") ? h.slice(1, -1) : h);
const bracket = (h: string) => (h.includes(":") ? `[${h}]` : h);
const portOf = (u: URL) => Number(u.port || (u.protocol === "https:" ? 443 : 80));
