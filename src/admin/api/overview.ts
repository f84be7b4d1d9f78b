import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { AdminError } from "../http.js";
import { configuredUpstreams } from "../state.js";
import { FIELDS } from "../stats/series.js";
import type { Ctx, Route } from "./route.js";

const VERSION = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

const fmt = (a: { address: string; port: number }) =>
  a.address.includes(":") ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;

/** Turns the response into a live stream (Server-Sent Events). */
export function stream(c: Ctx, kind: "overview" | "logs", filter = {}): undefined {
  if (!c.state.live.open(c.res, kind, filter)) {
    throw new AdminError(503, "GH_ADMIN_STREAMS", "too many live pages are open; close one and reload", undefined, {
      "retry-after": "10",
    });
  }
  return undefined;
}

export const overviewRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/overview",
    access: "read",
    async handle(c) {
      const overview = c.state.overview();
      // Boxes sharing through Redis: how many reported lately and their counters added up.
      const shared = await c.src.shared?.overview();
      return shared ? { ...overview, shared } : overview;
    },
  },
  {
    method: "GET",
    path: "/api/history",
    access: "read",
    handle: (c) => ({ slotMs: 60_000, fields: FIELDS, rows: c.state.stats.minutes.rows(c.state.stats.now()) }),
  },
  { method: "GET", path: "/api/events", access: "read", handle: (c) => stream(c, "overview") },
  {
    method: "GET",
    path: "/api/status",
    access: "read",
    handle(c) {
      const { src, state } = c;
      const rules = src.rules.summary();
      const byKind: Record<string, { files: number; entries: number }> = {};
      for (const f of rules) {
        const k = (byKind[f.kind] ??= { files: 0, entries: 0 });
        k.files++;
        k.entries += f.entries ?? 0;
      }
      const now = state.stats.now();
      return {
        version: VERSION,
        pid: process.pid,
        ...(src.workers ? { workers: src.workers } : {}),
        startedAt: state.startedAt,
        uptimeSeconds: Math.round((Date.now() - state.startedAt) / 1000),
        listeners: {
          proxy: src.proxyAddresses.map(fmt),
          dns: src.dnsAddresses.map(fmt),
          admin: src.adminAddress ? fmt(src.adminAddress as AddressInfo) : null,
          fronts: src.frontAddresses.map(fmt),
        },
        rules: {
          files: rules.length,
          entries: rules.reduce((n, f) => n + (f.entries ?? 0), 0),
          errors: rules.reduce((n, f) => n + f.errors, 0),
          byKind,
        },
        cache: src.cache.stats(),
        upstreams: state.stats.upstreamHealth(configuredUpstreams(src)),
        fronts: src.frontHealth,
        tls: src.tlsStatus,
        lastMinute: state.stats.minutes.sum(now, 1),
        lastHour: state.stats.minutes.sum(now, 60),
      };
    },
  },
  {
    method: "GET",
    path: "/metrics",
    access: "read",
    async handle(c) {
      const text = await c.state.metrics.text();
      c.res.writeHead(200, { "content-type": c.state.metrics.contentType, "cache-control": "no-store" });
      c.res.end(text);
      return undefined;
    },
  },
];
