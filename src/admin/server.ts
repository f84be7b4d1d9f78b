import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { SecureContext } from "node:tls";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import { type ListenAddress, normalizeAddress } from "../net/address.js";
import { sameListen } from "../net/listeners.js";
import { cacheRoutes } from "./api/cache.js";
import { logRoutes } from "./api/logs.js";
import { overviewRoutes } from "./api/overview.js";
import type { Ctx, Route } from "./api/route.js";
import { ruleRoutes } from "./api/rules.js";
import { sessionRoutes } from "./api/session.js";
import { Guard } from "./auth/guard.js";
import { assetRoutes } from "./dashboard/assets.js";
import { AdminError, sendError, sendJson } from "./http.js";
import type { AdminSource, AdminState } from "./state.js";

// The same file from src/admin/ (tests) and dist/admin/ (npm start): both are two levels down.
const OPENAPI = new URL("../../docs/openapi.json", import.meta.url);

const openapiRoute: Route = {
  method: "GET",
  path: "/api/openapi.json",
  access: "read",
  handle: () => JSON.parse(readFileSync(OPENAPI, "utf8")) as unknown,
};

/** Every route of the admin listener; docs/openapi.json describes the /api/ ones and /metrics. */
export const ROUTES: readonly Route[] = [
  ...assetRoutes,
  ...sessionRoutes,
  ...overviewRoutes,
  ...logRoutes,
  ...ruleRoutes,
  ...cacheRoutes,
  openapiRoute,
];

const byPath = new Map<string, Route[]>();
for (const r of ROUTES) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r]);

export interface AdminDeps {
  source: AdminSource;
  state: AdminState;
  /** With admin.tls: the certificate for the name a browser asks for (certs/ pairs, else the office CA). */
  certificate?: (servername: string) => SecureContext | undefined;
  log: Logger;
}

type Handle = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The admin listener: the dashboard's pages, its JSON API and /metrics. Who may use it is the
 * Guard's to say. A Part: a reload that keeps admin.listen keeps the socket (and the live pages on
 * it), and only the route to the new generation changes.
 */
export class AdminListener implements Part {
  readonly name = "admin.listen";
  /** The bound server and the route it calls, which travel with it to the next generation. */
  private bound: { server: Server; tls: boolean; route: { handle: Handle; certificate: AdminDeps["certificate"] } } | undefined;
  private created: AdminListener["bound"];
  private retained: AdminListener["bound"];
  private readonly guard: Guard;

  constructor(
    private readonly addr: ListenAddress | undefined,
    private readonly deps: AdminDeps,
    private readonly previous?: AdminListener,
  ) {
    const src = deps.source;
    this.guard = new Guard(
      deps.state,
      () => src.config.admin.password,
      () => src.config.admin.clients,
      () => src.config.admin.session,
    );
  }

  async prepare(): Promise<void> {
    const addr = this.addr;
    if (!addr) return;
    const prev = this.previous;
    const tls = this.deps.certificate !== undefined;
    if (prev?.bound && prev.addr && prev.bound.tls === tls && sameListen(prev.addr, prev.bound.server, addr)) {
      this.retained = prev.bound;
      return;
    }
    const route = {
      handle: (req: IncomingMessage, res: ServerResponse) => this.handle(req, res),
      certificate: this.deps.certificate,
    };
    const options = { headersTimeout: 10_000, requestTimeout: 60_000 };
    const listener = (req: IncomingMessage, res: ServerResponse) => route.handle(req, res);
    // With TLS the certificate is chosen per connection by the name the browser asks for (SNI),
    // through the route, so a reload that keeps the socket serves the new generation's
    // certificates. A browser that sends no name (an address typed in) gets no certificate.
    const server: Server = tls
      ? createHttpsServer(
          {
            ...options,
            minVersion: "TLSv1.2",
            SNICallback: (name, cb) => {
              const context = route.certificate?.(name.toLowerCase());
              if (context) cb(null, context);
              else cb(new Error(`no certificate for ${name}: add certs/NAME.crt and NAME.key for it, or create the office CA`));
            },
          },
          listener,
        )
      : createServer(options, listener);
    // Live pages hold their response open for as long as they are shown.
    server.timeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${addr.text} (${err.code ?? err.message}); is another program using it?`)),
      );
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.removeAllListeners("error");
        resolve();
      });
    });
    this.created = { server, tls, route };
  }

  commit(): void {
    if (this.retained && this.previous) {
      this.previous.bound = undefined;
      this.retained.route.handle = (req, res) => this.handle(req, res);
      this.retained.route.certificate = this.deps.certificate;
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
    this.serve(req, res).catch((err: unknown) => {
      if (err instanceof AdminError) return sendError(res, err);
      this.deps.log.error({ err, url: req.url }, "admin: request failed");
      sendJson(res, 500, { error: `the admin could not answer: ${(err as Error).message}`, code: "GH_ADMIN_INTERNAL" });
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = normalizeAddress(req.socket.remoteAddress ?? "");
    this.guard.checkReach(req, client);
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://admin");
    } catch {
      throw new AdminError(400, "GH_ADMIN_BAD_REQUEST", "the request target is not a path");
    }
    const candidates = byPath.get(url.pathname);
    if (!candidates) throw new AdminError(404, "GH_ADMIN_NOT_FOUND", `no page or API call at ${url.pathname.slice(0, 200)}`);
    const route = candidates.find((r) => r.method === req.method);
    if (!route) {
      const allow = candidates.map((r) => r.method).join(", ");
      throw new AdminError(405, "GH_ADMIN_METHOD", `${url.pathname} takes ${allow}`, undefined, { allow });
    }
    const principal = await this.guard.identify(req, client);
    if (route.access !== "public") {
      if (!principal)
        throw new AdminError(401, "GH_ADMIN_LOGIN", "log in first (POST /api/login), or send the CLI's token or the password");
      if (route.access === "change") this.guard.checkChange(req, principal);
    }
    const { source, state, log } = this.deps;
    const ctx: Ctx = { req, res, url, client, principal, src: source, state, guard: this.guard, log };
    const body = await route.handle(ctx);
    if (body !== undefined) sendJson(res, 200, body);
  }
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}
