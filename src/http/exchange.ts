import type { Readable } from "node:stream";
import type { Decision } from "../pipeline/stage.js";
import type { PushBody } from "./body.js";

export interface Client {
  address: string;
  port: number;
  loopback: boolean;
}

/**
 * One request as it passes the HTTP stages. Listeners fill it from the wire; stages read it and add
 * decisions. Later waves add identity, group and SNI here without changing the stages before them.
 */
export interface HttpExchange {
  /** Request id, shown on error pages and in the log so a user's report finds its log line. */
  readonly id: string;
  readonly client: Client;
  readonly method: string;
  /** The absolute target. For CONNECT: https://host:port/. */
  readonly url: URL;
  /** Host name without brackets for IPv6 literals, lower case. */
  readonly host: string;
  readonly port: number;
  readonly connect: boolean;
  /** Request headers, names lower case, as node parsed them (duplicates as arrays only for set-cookie). */
  readonly headers: Record<string, string | string[] | undefined>;
  /** The raw name/value list, for forwarding with the client's own spelling and order. */
  readonly rawHeaders: readonly string[];
  readonly httpVersion: string;
  readonly body: Readable | null;
  /** Called by whoever starts reading the body, so a client waiting on Expect: 100-continue proceeds. */
  readonly sendContinue: () => void;
  /** Relays an origin's 1xx (102, 103...) to the client. */
  readonly informational?: (status: number, headers: Record<string, string | string[] | undefined>) => void;
  /** Fires when the client goes away before its response is complete. */
  readonly abort: Abort;
  readonly decisions: Decision[];
  /** Filled as the response is made; read by the access log. */
  readonly log: { cache: string; hierarchy: string; peer: string; contentType?: string };
  identity?: { user?: string; group?: string };
  sni?: string;
}

export type HeaderList = [name: string, value: string | string[]][];

/** [name, value] pairs as the flat list writeHead takes, repeated fields one line each. */
export function flattenHeaders(list: HeaderList): string[] {
  const flat: string[] = [];
  for (const [n, v] of list) {
    if (Array.isArray(v)) for (const s of v) flat.push(n, s);
    else flat.push(n, v);
  }
  return flat;
}

export interface HttpResponse {
  kind: "response";
  status: number;
  statusText?: string;
  headers: HeaderList;
  /** The same headers flattened for writeHead, when the producer has them ready (cache hits). */
  flat?: string[];
  body: PushBody | Buffer | null;
}

/** CONNECT allowed: the listener relays bytes to host:port. */
export interface TunnelOutcome {
  kind: "tunnel";
  host: string;
  port: number;
}

export type HttpOutcome = HttpResponse | TunnelOutcome;

/** A cheaper AbortSignal: measured, an AbortController per request cost the proxy about 15% of its rate. */
export class Abort {
  aborted = false;
  private listeners: (() => void)[] | undefined;

  on(fn: () => void): void {
    if (this.aborted) fn();
    else (this.listeners ??= []).push(fn);
  }

  off(fn: () => void): void {
    const i = this.listeners?.indexOf(fn) ?? -1;
    if (i >= 0) this.listeners?.splice(i, 1);
  }

  fire(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listeners;
    this.listeners = undefined;
    if (l) for (const fn of l) fn();
  }
}
