import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ExplainInputError, type Explanation } from "../explain/explain.js";
import type { HttpCache } from "../http/cache/http-cache.js";
import { sameListen } from "../http/listener.js";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import { isLoopback, type ListenAddress, normalizeAddress } from "../net/address.js";

/** What the admin API reads; functions of the generation in force, so a reload shows at once. */
export interface AdminDeps {
  cache(): HttpCache;
  password(): string;
  explain(target: string, client: string | undefined): Promise<Explanation>;
  log: Logger;
}

type Handle = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The admin listener's JSON API (the dashboard comes next and sits on the same routes). With no
 * password only loopback clients may use it; with one, HTTP Basic auth. A Part: a reload that keeps
 * admin.listen keeps the socket.
 */
export class AdminListener implements Part {
  readonly name = "admin.listen";
  /** The bound server and the route it calls, which travels with it to the next generation. */
  private bound: { server: Server; route: { handle: Handle } } | undefined;
  private created: AdminListener["bound"];
  private retained: AdminListener["bound"];

  constructor(
    private readonly addr: ListenAddress | undefined,
    private readonly deps: AdminDeps,
    private readonly previous?: AdminListener,
  ) {}

  async prepare(): Promise<void> {
    const addr = this.addr;
    if (!addr) return;
    const prev = this.previous;
    if (prev?.bound && prev.addr && sameListen(prev.addr, prev.bound.server, addr)) {
      this.retained = prev.bound;
      return;
    }
    const route = { handle: (req: IncomingMessage, res: ServerResponse) => this.handle(req, res) };
    const server = createServer((req, res) => route.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${addr.text} (${err.code ?? err.message}); is another program using it?`)),
      );
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.removeAllListeners("error");
        resolve();
      });
    });
    this.created = { server, route };
  }

  commit(): void {
    if (this.retained && this.previous) {
      this.previous.bound = undefined;
      this.retained.route.handle = (req, res) => this.handle(req, res);
      this.bound = this.retained;
    } else this.bound = this.created;
  }

  async abort(): Promise<void> {
    if (this.created) await close(this.created.server);
    this.created = undefined;
  }

  async dispose(): Promise<void> {
    const b = this.bound;
    this.bound = undefined;
    if (b) await close(b.server);
  }

  get address(): AddressInfo | undefined {
    return (this.bound?.server.address() as AddressInfo | null) ?? undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const client = normalizeAddress(req.socket.remoteAddress ?? "");
    const json = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...extra });
      res.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    if (!this.authorized(req, client)) {
      const password = this.deps.password();
      return json(
        password ? 401 : 403,
        {
          error: password ? "password required" : "the admin API answers loopback clients only while admin.password is empty",
        },
        password ? { "www-authenticate": 'Basic realm="gatehouse admin"' } : {},
      );
    }
    const url = new URL(req.url ?? "/", "http://admin");
    if (req.method === "GET" && url.pathname === "/api/cache/stats") return json(200, this.deps.cache().stats());
    if (req.method === "POST" && url.pathname === "/api/cache/purge") {
      const target = url.searchParams.get("url");
      if (!target) return json(400, { error: "give the URL to purge as ?url=" });
      let href: string;
      try {
        href = new URL(target).href;
      } catch {
        return json(400, { error: `"${target.slice(0, 200)}" is not a URL; give an absolute URL like http://example.com/page` });
      }
      const purged = this.deps.cache().purge(href);
      this.deps.log.info({ url: href, purged, client }, "cache purge");
      return json(200, { url: href, purged });
    }
    if (req.method === "GET" && url.pathname === "/api/explain") {
      const target = url.searchParams.get("target");
      if (!target) return json(400, { error: "give the URL or domain to explain as ?target=" });
      this.deps.explain(target, url.searchParams.get("client") ?? undefined).then(
        (e) => json(200, e),
        (err: unknown) =>
          err instanceof ExplainInputError
            ? json(400, { error: err.message })
            : json(500, { error: `explain failed: ${(err as Error).message}` }),
      );
      return;
    }
    if (req.method === "GET" && url.pathname === "/") {
      return json(200, {
        gatehouse: "admin API",
        routes: ["GET /api/cache/stats", "POST /api/cache/purge?url=URL", "GET /api/explain?target=URL|DOMAIN&client=IP"],
      });
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
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}
