import { verifyPassword } from "../auth/password.js";
import { COOKIE } from "../auth/sessions.js";
import { AdminError, readJson, stringField } from "../http.js";
import type { Ctx, Route } from "./route.js";

const SMALL_BODY = 16 * 1024;

function setCookie(c: Ctx, id: string, clear = false): void {
  // Secure whenever the browser reached us over TLS; SameSite=Strict keeps it off every request
  // another site starts, HttpOnly keeps it from scripts.
  const secure = (c.req.socket as { encrypted?: boolean }).encrypted ? "; Secure" : "";
  const expire = clear ? "; Max-Age=0" : "";
  c.res.setHeader("set-cookie", `${COOKIE}=${clear ? "" : id}; Path=/; HttpOnly; SameSite=Strict${secure}${expire}`);
}

export const sessionRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/session",
    access: "public",
    handle(c) {
      const p = c.principal;
      const passwordSet = c.guard.passwordSet;
      if (p?.kind === "session") return { authenticated: true, passwordSet, csrf: p.session.csrf };
      // With no password a loopback browser needs no login, but its changes still need a CSRF
      // token, which comes with a session.
      if (p?.kind === "loopback") {
        const s = c.state.sessions.create(c.client);
        setCookie(c, s.id);
        return { authenticated: true, passwordSet, csrf: s.csrf };
      }
      return { authenticated: p !== undefined, passwordSet };
    },
  },
  {
    method: "POST",
    path: "/api/login",
    access: "public",
    async handle(c) {
      c.guard.throttle(c.client);
      const body = await readJson(c.req, SMALL_BODY);
      const password = stringField(body, "password", 1024) as string;
      const hash = c.src.config.admin.password;
      if (hash === "")
        throw new AdminError(400, "GH_ADMIN_NO_PASSWORD", "admin.password is empty: there is nothing to log in to");
      if (!(await verifyPassword(password, hash))) {
        c.state.limiter.failed(c.client);
        c.log.warn({ client: c.client }, `admin: failed login from ${c.client}`);
        throw new AdminError(401, "GH_ADMIN_BAD_PASSWORD", "wrong password");
      }
      c.state.limiter.succeeded(c.client);
      const s = c.state.sessions.create(c.client);
      setCookie(c, s.id);
      c.log.info({ client: c.client }, `admin: login from ${c.client}`);
      return { authenticated: true, passwordSet: true, csrf: s.csrf };
    },
  },
  {
    method: "POST",
    path: "/api/logout",
    access: "change",
    handle(c) {
      if (c.principal?.kind === "session") c.state.sessions.end(c.principal.session.id);
      setCookie(c, "", true);
      return { authenticated: false };
    },
  },
];
