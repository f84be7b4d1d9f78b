import { request } from "undici";
import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";
import { formatBytes } from "../config/units.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import { parseListen } from "../net/address.js";

/** gatehouse cache stats | gatehouse cache purge URL: asks the running gatehouse through its admin API. */
export async function cacheCommand(args: { config?: string; positionals: string[] }): Promise<number> {
  const [action, target] = args.positionals;
  if (action !== "stats" && !(action === "purge" && target)) {
    process.stderr.write("usage: gatehouse cache stats [-c FILE] | gatehouse cache purge URL [-c FILE]\n");
    return 2;
  }
  let base: string;
  let password: string;
  try {
    const { config } = loadConfig(args.config);
    const addr = parseListen(config.admin.listen);
    if (typeof addr === "string") throw new Error(`admin.listen: ${addr}`);
    const host = addr.host === undefined || addr.host === "0.0.0.0" || addr.host === "::" ? "127.0.0.1" : addr.host;
    base = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
    password = config.admin.password;
  } catch (err) {
    if (err instanceof DiagnosticsError) for (const d of err.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    else process.stderr.write(`gatehouse cache: ${(err as Error).message}\n`);
    return 1;
  }
  const headers: Record<string, string> = password
    ? { authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}` }
    : {};
  try {
    if (action === "stats") {
      const res = await request(`${base}/api/cache/stats`, { headers });
      if (res.statusCode !== 200) throw new Error(`admin API answered ${res.statusCode}: ${await res.body.text()}`);
      const s = (await res.body.json()) as CacheStats;
      process.stdout.write(
        [
          `memory: ${s.entries} entries, ${formatBytes(s.bytes)}`,
          `disk:   ${s.diskEntries} entries, ${formatBytes(s.diskBytes)}`,
          `hits: ${s.hits}, misses: ${s.misses}, hit ratio: ${(s.hitRatio * 100).toFixed(1)}%`,
          "",
        ].join("\n"),
      );
      return 0;
    }
    const res = await request(`${base}/api/cache/purge?url=${encodeURIComponent(target as string)}`, { method: "POST", headers });
    if (res.statusCode !== 200) throw new Error(`admin API answered ${res.statusCode}: ${await res.body.text()}`);
    const r = (await res.body.json()) as { purged: number };
    process.stdout.write(
      `${target}: ${r.purged === 0 ? "not in the cache" : `purged ${r.purged} stored response${r.purged === 1 ? "" : "s"}`}\n`,
    );
    return 0;
  } catch (err) {
    const e = err as { code?: string; errors?: { code?: string }[] };
    const refused = e.code === "ECONNREFUSED" || e.errors?.some((x) => x.code === "ECONNREFUSED");
    process.stderr.write(
      refused
        ? `gatehouse cache: no gatehouse answers on ${base} (admin.listen); is it running?\n`
        : `gatehouse cache: ${(err as Error).message}\n`,
    );
    return 1;
  }
}
