// Hop-by-hop fields (RFC 9110 §7.6.1) and the proxy's own: they describe one connection, so a proxy
// consumes them and never passes them on. Expect and Max-Forwards are handled by the proxy itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

const REQUEST_ONLY = new Set(["host", "expect"]);

/** Field names listed in Connection, which are hop-by-hop for this one message. */
function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(",") : value;
  const names = new Set<string>();
  for (const token of text.split(",")) {
    const name = token.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}

export interface ForwardOptions {
  host: string;
  via: string;
  maxForwards?: number;
  /** Forward proxy with proxy.forwardedFor: the client address appended to X-Forwarded-For. */
  forwardedFor?: string;
  /**
   * A front: X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) describe the real connection.
   * What the client sent in them is kept only from a trusted proxy (a load balancer before us).
   */
  front?: { client: string; proto: "http" | "https"; host: string; trusted: boolean };
}

const FORWARDING = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]);

/** Request headers for the origin: the client's own spelling and order, less what is hop-by-hop. */
export function forwardRequestHeaders(
  raw: readonly string[],
  connection: string | string[] | undefined,
  opts: ForwardOptions,
): string[] {
  const listed = connectionListed(connection);
  const out: string[] = ["host", opts.host];
  const front = opts.front;
  let via: string | undefined;
  let xff: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || REQUEST_ONLY.has(lower) || listed?.has(lower)) continue;
    if (lower === "max-forwards" && opts.maxForwards !== undefined) continue;
    if (lower === "via") {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    if (front && FORWARDING.has(lower)) {
      // A client could claim any address here; only a trusted proxy's word is passed on.
      if (!front.trusted) continue;
      if (lower === "x-forwarded-for") xff = xff === undefined ? value : `${xff}, ${value}`;
      else if (lower === "forwarded") forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
      continue;
    }
    if (lower === "x-forwarded-for" && opts.forwardedFor !== undefined) {
      xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  out.push("via", via === undefined ? opts.via : `${via}, ${opts.via}`);
  const client = front?.client ?? opts.forwardedFor;
  if (client !== undefined) out.push("x-forwarded-for", xff === undefined ? client : `${xff}, ${client}`);
  if (front) {
    out.push("x-forwarded-proto", front.proto, "x-forwarded-host", front.host);
    const node = front.client.includes(":") ? `"[${front.client}]"` : front.client;
    const element = `for=${node};host=${quoteIfNeeded(front.host)};proto=${front.proto}`;
    out.push("forwarded", forwarded === undefined ? element : `${forwarded}, ${element}`);
  }
  if (opts.maxForwards !== undefined) out.push("max-forwards", String(opts.maxForwards));
  return out;
}

/** RFC 7239 §4: a value that is not a token is a quoted-string. */
function quoteIfNeeded(value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, "\\$&")}"`;
}

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}

/** True if a Via header names this proxy already: the request has looped back to us. */
export function viaNames(via: string | string[] | undefined, name: string): boolean {
  if (via === undefined) return false;
  const text = Array.isArray(via) ? via.join(",") : via;
  for (const hop of text.split(",")) {
    const parts = hop.trim().split(/\s+/);
    if (parts[1]?.toLowerCase() === name.toLowerCase()) return true;
  }
  return false;
}
