import { type ConnectionContext, HttpExchange, type ListenerKind } from "../../src/http/exchange.js";
import { isLoopback } from "../../src/net/address.js";

export interface ExchangeSpec {
  kind?: ListenerKind;
  method?: string;
  target: string;
  /** Raw header pairs as a client sends them; Host is not added for you. */
  raw?: [string, string][];
  httpVersion?: string;
  client?: string;
  scheme?: "http" | "https";
  authority?: { host: string; port: number };
  local?: { address: string; port: number };
}

/** An exchange as a listener would build it from a request on a connection, without a socket. */
export function exchange(spec: ExchangeSpec): HttpExchange {
  const client = spec.client ?? "127.0.0.1";
  const ctx: ConnectionContext = {
    kind: spec.kind ?? "forward",
    listener: "test",
    client: { address: client, port: 40000, loopback: isLoopback(client) },
    local: spec.local ?? { address: "127.0.0.1", port: 3128 },
    scheme: spec.scheme ?? (spec.kind === "intercept" ? "https" : "http"),
    authority: spec.authority,
  };
  const raw = spec.raw ?? [];
  const headers: Record<string, string | string[]> = {};
  for (const [n, v] of raw) {
    const k = n.toLowerCase();
    // node keeps the first of most duplicated fields (joinDuplicateHeaders: false).
    if (headers[k] === undefined) headers[k] = v;
  }
  return new HttpExchange({
    ctx,
    method: spec.method ?? "GET",
    target: spec.target,
    headers,
    rawHeaders: raw.flat(),
    httpVersion: spec.httpVersion ?? "1.1",
    body: null,
  });
}
