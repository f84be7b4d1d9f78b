import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import type { Decision, Stage } from "../pipeline/stage.js";
import type { PushBody } from "./body.js";

export interface Client {
  address: string;
  port: number;
  loopback: boolean;
  /** Only `explain` without --client: checks on the client's address are skipped, not failed. */
  unknown?: true;
}

/**
 * Which kind of listener a connection came in on. The kind decides the chain (chains.ts) and where
 * an origin-form request's authority comes from: nowhere (forward: browsers send absolute URLs), the
 * tunnel (intercept: the CONNECT target), or the client's Host (front).
 */
export type ListenerKind = "forward" | "intercept" | "front";

/** What a listener knows about a connection before any request on it; built once per connection. */
export interface ConnectionContext {
  readonly kind: ListenerKind;
  /** For logs: "proxy 127.0.0.1:3128", or a front's name. */
  readonly listener: string;
  readonly client: Client;
  readonly local: { address: string; port: number };
  /** "https" when the client spoke TLS to us (an intercepted tunnel, a TLS front). */
  readonly scheme: "http" | "https";
  /** Intercepted tunnels: the CONNECT target, which every request on the tunnel is for. */
  readonly authority?: { host: string; port: number };
  /** The TLS server name the client sent, when it spoke TLS. */
  readonly sni?: string;
}

/** The 1xx side of a response in progress; node's ServerResponse is one. */
export interface Interim {
  readonly headersSent: boolean;
  writeContinue(): void;
  writeProcessing(): void;
  writeEarlyHints(hints: Record<string, string | string[]>): void;
}

/** The front a request on a front listener is for, chosen by the route stage from its Host. */
export interface FrontTarget {
  readonly name: string;
  /** An http front that only sends clients to its https twin. */
  readonly redirectToHttps: boolean;
  /** Where redirectToHttps sends a URL: the https front serving its host, on that front's port. */
  httpsLocation(url: URL): string;
  /** The front's cache stage, when the front has cache: true (Cache-Status names the front). */
  readonly cache: Stage<HttpExchange, HttpOutcome> | undefined;
  fetch(x: HttpExchange, opts: { maxForwards?: number }): Promise<HttpResponse>;
}

export interface ExchangeLog {
  /** Squid's result code for the access log: TCP_MISS, TCP_MEM_HIT, TCP_DENIED... */
  cache: string;
  hierarchy: string;
  peer: string;
  contentType?: string;
}

export type Headers = Record<string, string | string[] | undefined>;

// Unique across processes and restarts (workers, a quick restart): a random prefix per process.
const ID_PREFIX = `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
let counter = 0;
export const nextRequestId = (): string => `${ID_PREFIX}-${(++counter).toString(36)}`;

/**
 * One request as it passes the HTTP stages: what the client sent, the connection it came on, and
 * what the stages decided. A class, not an object literal with closures: measured on the hot path,
 * per-request closures cost the proxy a few percent of its rate.
 */
export class HttpExchange {
  /** Request id, shown on error pages and in the log so a user's report finds its log line. */
  readonly id: string;
  readonly ctx: ConnectionContext;
  readonly client: Client;
  method: string;
  /** The request-target exactly as sent: absolute-form, origin-form, authority-form or "*". */
  readonly target: string;
  /** Request headers, names lower case, as node parsed them. */
  headers: Headers;
  /** The raw name/value list, for forwarding with the client's own spelling and order. */
  rawHeaders: readonly string[];
  readonly httpVersion: string;
  readonly connect: boolean;
  body: Readable | null;
  // Set by the target stage, the first of every chain; later stages may rely on them.
  /** The absolute URL the request is for. For CONNECT: https://host:port/. */
  url!: URL;
  /** Host without brackets for IPv6 literals, lower case. */
  host!: string;
  port!: number;
  /** An origin-form request on the forward proxy: for the proxy itself, not for a site. */
  toSelf = false;
  /** On a front listener: the front the Host names (set by the route stage). */
  front: FrontTarget | undefined;
  /** Set when the upstream fetch took the request body; otherwise the listener drains it. */
  bodyTaken = false;
  decisions: Decision[];
  log: ExchangeLog;
  readonly abort: Abort;
  identity?: { user?: string; group?: string };
  private readonly interim: Interim | undefined;

  constructor(init: {
    ctx: ConnectionContext;
    method: string;
    target: string;
    headers: Headers;
    rawHeaders: readonly string[];
    httpVersion: string;
    body: Readable | null;
    interim?: Interim;
    id?: string;
  }) {
    this.id = init.id ?? nextRequestId();
    this.ctx = init.ctx;
    this.client = init.ctx.client;
    this.method = init.method;
    this.target = init.target;
    this.headers = init.headers;
    this.rawHeaders = init.rawHeaders;
    this.httpVersion = init.httpVersion;
    this.connect = init.method === "CONNECT";
    this.body = init.body;
    this.interim = init.interim;
    this.decisions = [];
    this.log = { cache: this.connect ? "TCP_TUNNEL" : "TCP_MISS", hierarchy: "HIER_NONE", peer: "-", contentType: undefined };
    this.abort = new Abort();
  }

  /** The exchange of a request as Node parsed it; an HTTP/2 request is seen through its HTTP/1 view. */
  static of(req: IncomingMessage, ctx: ConnectionContext, body: Readable | null, interim?: Interim): HttpExchange {
    const h = req.httpVersionMajor === 2 ? http1View(req) : req;
    return new HttpExchange({
      ctx,
      method: req.method ?? "GET",
      target: req.url ?? "/",
      headers: h.headers,
      rawHeaders: h.rawHeaders,
      httpVersion: req.httpVersion,
      body,
      interim,
    });
  }

  get sni(): string | undefined {
    return this.ctx.sni;
  }

  /** Called by whoever starts reading the body, so a client waiting on Expect: 100-continue proceeds. */
  sendContinue(): void {
    const res = this.interim;
    if (res && this.headers.expect !== undefined && !res.headersSent) res.writeContinue();
  }

  /** Relays an origin's 1xx (102, 103) to the client. */
  informational(status: number, headers: Record<string, string | string[]>): void {
    const res = this.interim;
    if (!res || res.headersSent) return;
    if (status === 103) res.writeEarlyHints(headers);
    else if (status === 102) res.writeProcessing();
  }

  /** A copy with some request fields changed (a cache revalidation), sharing id, client and abort. */
  with(changes: Partial<Pick<HttpExchange, "method" | "headers" | "rawHeaders" | "body" | "decisions" | "log">>): HttpExchange {
    const copy = Object.create(HttpExchange.prototype) as HttpExchange;
    Object.assign(copy, this, changes);
    return copy;
  }
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
  /** Close the client connection after this response (a request whose framing cannot be trusted). */
  close?: boolean;
}

/** CONNECT allowed: the listener relays bytes to host:port. */
export interface TunnelOutcome {
  kind: "tunnel";
  host: string;
  port: number;
  /** A tunnel to gatehouse itself (its pages over HTTPS): decrypted and answered, never relayed. */
  local?: true;
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

/** HTTP/2 pseudo-headers dropped, :authority as Host: what the stages, the cache and the upstream read. */
function http1View(req: IncomingMessage): { headers: IncomingMessage["headers"]; rawHeaders: string[] } {
  const authority = req.headers[":authority"];
  const headers: IncomingMessage["headers"] = {};
  for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(":")) headers[k] = v;
  const rawHeaders: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    if (!name.startsWith(":")) rawHeaders.push(name, req.rawHeaders[i + 1] as string);
  }
  if (headers.host === undefined && typeof authority === "string") {
    headers.host = authority;
    rawHeaders.unshift("host", authority);
  }
  return { headers, rawHeaders };
}
