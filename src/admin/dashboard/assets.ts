import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Route } from "../api/route.js";
import { BASE_HEADERS } from "../http.js";

// The dashboard is static files served from the package: no CDN, nothing fetched from the internet.
// The page's own files sit beside this module in src/ (the build compiles only TypeScript, so dist/
// reads them from src/ too); uPlot comes from its npm package.

const here = (name: string) => fileURLToPath(new URL(`../../../src/admin/dashboard/${name}`, import.meta.url));
const require = createRequire(import.meta.url);

/** Only this origin's own files, no inline script, no framing: escaping mistakes cannot run code. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const ASSETS: [path: string, file: () => string, type: string][] = [
  ["/", () => here("index.html"), "text/html; charset=utf-8"],
  ["/assets/app.js", () => here("app.js"), "text/javascript; charset=utf-8"],
  ["/assets/style.css", () => here("style.css"), "text/css; charset=utf-8"],
  ["/assets/uplot.js", () => require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript; charset=utf-8"],
  ["/assets/uplot.css", () => require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8"],
];

const loaded = new Map<string, Buffer>();

export const assetRoutes: Route[] = ASSETS.map(([path, file, type]) => ({
  method: "GET",
  path,
  access: "public",
  handle(c) {
    let body = loaded.get(path);
    if (!body) {
      body = readFileSync(file());
      loaded.set(path, body);
    }
    c.res.writeHead(200, {
      ...BASE_HEADERS,
      "content-type": type,
      "content-length": String(body.length),
      "content-security-policy": CSP,
    });
    c.res.end(body);
    return undefined;
  },
}));
