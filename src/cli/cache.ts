import { formatBytes } from "../config/units.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import { AdminClient } from "./admin-client.js";
import { configForCommand } from "./config.js";

const USAGE = "usage: gatehouse cache stats [-c FILE] | gatehouse cache purge URL [-c FILE]\n";

/** gatehouse cache stats | gatehouse cache purge URL: asks the running gatehouse through its admin API. */
export async function cacheCommand(args: { config?: string; positionals: string[] }): Promise<number> {
  const [action, target] = args.positionals;
  if (action !== "stats" && !(action === "purge" && target)) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (action === "purge" && !isUrl(target as string)) {
    process.stderr.write(
      `gatehouse cache purge: "${target}" is not a URL; give the address as stored, like http://example.com/page\n`,
    );
    return 2;
  }
  const admin = configForCommand(args.config, "cache", (c) => new AdminClient(c));
  if (!admin) return 1;
  try {
    if (action === "stats") {
      const s = await admin.call<CacheStats>("GET", "/api/cache/stats");
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
    const r = await admin.call<{ purged: number }>("POST", `/api/cache/purge?url=${encodeURIComponent(target as string)}`);
    process.stdout.write(
      `${target}: ${r.purged === 0 ? "not in the cache" : `purged ${r.purged} stored response${r.purged === 1 ? "" : "s"}`}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`gatehouse cache: ${(err as Error).message}\n`);
    return 1;
  }
}

function isUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
