import { AdminError } from "../http.js";
import { type Ctx, param, type Route } from "./route.js";

function absoluteUrl(text: string, what: string): string {
  try {
    const u = new URL(text);
    if (u.protocol === "http:" || u.protocol === "https:") return u.href;
  } catch {
    // Said below.
  }
  throw new AdminError(
    400,
    "GH_ADMIN_BAD_URL",
    `${what} "${text.slice(0, 200)}" is not an http:// or https:// URL; give one like http://example.com/page`,
  );
}

/** Purge one URL (every variant) or every URL that begins with a prefix, in every cache tier. */
async function purge(c: Ctx) {
  const url = param(c.url, "url", 8192);
  const prefix = param(c.url, "prefix", 8192);
  if ((url === undefined) === (prefix === undefined)) {
    throw new AdminError(400, "GH_ADMIN_MISSING_FIELD", "give the URL to purge as ?url=, or a beginning of URLs as ?prefix=");
  }
  const cache = c.src.cache;
  if (url !== undefined) {
    const href = absoluteUrl(url, "url");
    const purged = await cache.purge(href);
    c.log.info({ url: href, purged, client: c.client }, "cache purge");
    return { url: href, purged };
  }
  const start = absoluteUrl(prefix as string, "prefix");
  // new URL() adds a "/" to a bare origin; a prefix is matched as the admin typed it otherwise.
  const match = /^https?:\/\/[^/]+$/i.test(prefix as string) ? (prefix as string).toLowerCase() : start;
  const { urls, purged } = await cache.purgePrefix(match);
  c.log.info({ prefix: match, urls, purged, client: c.client }, "cache purge by prefix");
  return { prefix: match, urls, purged };
}

export const cacheRoutes: Route[] = [
  { method: "GET", path: "/api/cache/stats", access: "read", handle: (c) => c.src.cache.stats() },
  { method: "POST", path: "/api/cache/purge", access: "change", handle: purge },
];
