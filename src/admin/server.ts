import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { HttpCache } from "../http/cache/http-cache.js";
import type { Logger } from "../log/logger.js";
import { isLoopback, type ListenAddress, normalizeAddress } from "../net/address.js";

export interface AdminDeps {
  cache: () => HttpCache;
  password: () => string;
  log: Logger;
}

/**
 * The admin listener's JSON API (the dashboard comes in a later wave and will sit on the same
 * routes). With no password only loopback clients may use it; with one, HTTP Basic auth.
 */
export class AdminServer {
  private server: Server | undefined;

  constructor(private readonly deps: AdminDeps) {}

  async listen(addr: ListenAddress): Promise<AddressInfo> {
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    return server.address() as AddressInfo;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const client = normalizeAddress(req.socket.remoteAddress ?? "");
    if (!this.authorized(req, client)) {
      const password = this.deps.password();
      res.writeHead(password ? 401 : 403, {
        "content-type": "application/json",
        ...(password ? { "www-authenticate": 'Basic realm="gatehouse admin"' } : {}),
      });
      res.end(
        JSON.stringify({
          error: password ? "password required" : "the admin API answers loopback clients only while admin.password is empty",
        }),
      );
      return;
    }
    const url = new URL(req.url ?? "/", "http://admin");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    if (req.method === "GET" && url.pathname === "/api/cache/stats") return json(200, this.deps.cache().stats());
    if (req.method === "POST" && url.pathname === "/api/cache/purge") {
      const target = url.searchParams.get("url");
      if (!target) return json(400, { error: "give the URL to purge as ?url=" });
      const purged = this.deps.cache().purge(target);
      this.deps.log.info({ url: target, purged, client }, "cache purge");
      return json(200, { url: target, purged });
    }
    if (req.method === "GET" && url.pathname === "/") {
      return json(200, { gatehouse: "admin API", routes: ["GET /api/cache/stats", "POST /api/cache/purge?url=URL"] });
    }
    json(404, { error: `no route ${req.method} ${url.pathname}` });
  }

  private authorized(req: IncomingMessage, client: string): boolean {
    const password = this.deps.password();
    if (password === "") return isLoopback(client);
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!m) return false;
    const given = Buffer.from(
      Buffer.from(m[1] as string, "base64")
        .toString("utf8")
        .replace(/^[^:]*:/, ""),
    );
    const want = Buffer.from(password);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
