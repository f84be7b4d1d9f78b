import type { Overview } from "../admin/state.js";
import type { UpstreamHealth } from "../admin/stats/stats.js";
import type { Config } from "../config/schema.js";
import { formatBytes } from "../config/units.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import { AdminClient } from "./admin-client.js";
import { configForCommand } from "./config.js";

interface Status {
  version: string;
  pid: number;
  workers?: { id: number; pid: number; since: number }[];
  uptimeSeconds: number;
  listeners: { proxy: string[]; dns: string[]; admin: string | null; fronts?: string[] };
  rules: { files: number; entries: number; errors: number; byKind: Record<string, { files: number; entries: number }> };
  cache: CacheStats;
  upstreams: UpstreamHealth[];
  fronts?: { front: string; backends: { backend: string; up: boolean; lastError?: string }[] }[];
  lastMinute: Overview["day"];
  lastHour: Overview["day"];
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

/** gatehouse status: what the running gatehouse serves, from its admin API. */
export async function statusCommand(args: { config?: string }): Promise<number> {
  const made = configForCommand(args.config, "status", (c) => ({ config: c, admin: new AdminClient(c) }));
  if (!made) return 1;
  const { config, admin } = made;
  let s: Status;
  try {
    s = await admin.call<Status>("GET", "/api/status");
  } catch (err) {
    process.stderr.write(`gatehouse status: ${(err as Error).message}\n`);
    return 1;
  }
  const list = (xs: string[]) => (xs.length === 0 ? "off" : xs.join(", "));
  const kinds = Object.entries(s.rules.byKind)
    .map(([k, v]) => `${k} ${v.entries} in ${v.files} file${v.files === 1 ? "" : "s"}`)
    .join("; ");
  const c = s.cache;
  const h = s.lastHour;
  const lines = [
    `gatehouse ${s.version}, running for ${duration(s.uptimeSeconds)} (pid ${s.pid})`,
    ...(s.workers
      ? [
          `workers: ${s.workers.length} (${s.workers.map((w) => `pid ${w.pid}, up ${duration(Math.round((Date.now() - w.since) / 1000))}`).join("; ")})`,
        ]
      : []),
    "listeners:",
    `  proxy  ${list(s.listeners.proxy)}`,
    `  dns    ${list(s.listeners.dns)}`,
    `  admin  ${s.listeners.admin ?? "off"}`,
    `  fronts ${list(s.listeners.fronts ?? [])}`,
    `rules: ${s.rules.entries} entries in ${s.rules.files} files${kinds ? ` (${kinds})` : ""}, ${s.rules.errors} error${s.rules.errors === 1 ? "" : "s"}${s.rules.errors > 0 ? " (gatehouse check lists them)" : ""}`,
    `cache: memory ${c.entries} entries, ${formatBytes(c.bytes)}; disk ${c.diskEntries} entries, ${formatBytes(c.diskBytes)}; hit ratio ${(c.hitRatio * 100).toFixed(1)}% (${c.hits} hits, ${c.misses} misses)`,
    `last hour: ${h.requests} requests, ${h.queries} DNS queries, ${h.blockedRequests + h.blockedQueries} blocked`,
    "dns upstreams:",
    ...(s.upstreams.length === 0
      ? ["  none configured"]
      : s.upstreams.map(
          (u) =>
            `  ${u.server.padEnd(24)} ${u.state.padEnd(8)} ${u.latencyMs === undefined ? "-" : `${u.latencyMs} ms`} (${u.answers} answers, ${u.failures} failures in 15 min)`,
        )),
    "fronts:",
    ...frontLines(s.fronts ?? [], config),
    "",
  ];
  process.stdout.write(lines.join("\n"));
  return 0;
}

/**
 * One line a front: its protocol and listen addresses (from the config the CLI read, the one the
 * running gatehouse serves) and each backend up or down, with the last error of a down one.
 */
function frontLines(fronts: NonNullable<Status["fronts"]>, config: Config): string[] {
  if (fronts.length === 0) return ["  none configured"];
  return fronts.map(({ front, backends }) => {
    const cfg = config.fronts.find((f) => f.name === front);
    const where = cfg ? ` ${cfg.protocol} on ${cfg.listen.join(", ")}` : "";
    const state = backends.map((b) => `${b.backend} ${b.up ? "up" : `DOWN${b.lastError ? ` (${b.lastError})` : ""}`}`).join(", ");
    return `  ${front}${where}: ${state || "no backends"}`;
  });
}
