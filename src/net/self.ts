import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { isLoopback, normalizeAddress } from "./address.js";
import { isLoopbackHost } from "./lookup.js";

export interface Endpoint {
  address: string;
  port: number;
}

const WILDCARD = new Set(["::", "0.0.0.0"]);

/**
 * Where gatehouse itself listens (proxy, DNS, admin, fronts), so a request or a tunnel aimed at
 * one of its own sockets is answered or refused instead of looping back into it. Replaced whole
 * whenever the listeners change.
 */
export class SelfEndpoints {
  private endpoints: readonly Endpoint[] = [];
  private local = new Set<string>();

  set(endpoints: readonly Endpoint[]): void {
    this.endpoints = endpoints.map((e) => ({ address: normalizeAddress(e.address), port: e.port }));
    // A wildcard listener answers on every local address: learn them once per change, not per request.
    this.local = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const i of list ?? []) this.local.add(normalizeAddress(i.address));
  }

  /**
   * True when host:port reaches one of our own listeners. `host` is an IP literal or a name; only
   * loopback names (localhost) are judged here, other names after they are resolved.
   */
  matches(host: string, port: number): boolean {
    const literal = isIP(host) !== 0;
    if (!literal && !isLoopbackHost(host)) return false;
    const address = literal ? normalizeAddress(host) : undefined;
    for (const e of this.endpoints) {
      if (e.port !== port) continue;
      if (WILDCARD.has(e.address)) {
        if (address === undefined || isLoopback(address) || this.local.has(address) || WILDCARD.has(address)) return true;
      } else if (address === undefined ? isLoopback(e.address) : address === e.address) return true;
    }
    return false;
  }

  get list(): readonly Endpoint[] {
    return this.endpoints;
  }
}
