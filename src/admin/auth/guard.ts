import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { AddressSet, isLoopback } from "../../net/address.js";
import { AdminError } from "../http.js";
import type { AdminState } from "../state.js";
import { verifyPassword } from "./password.js";
import { COOKIE, readCookie, type Session, sameSecret } from "./sessions.js";

/** Who a request is from, as far as the admin is concerned. */
export type Principal =
  /** A browser with a login (or, with no password set, a loopback browser's session). */
  | { kind: "session"; session: Session }
  /** The CLI on this machine, with the token from admin.state. */
  | { kind: "token" }
  /** A script or Prometheus, with the password in HTTP Basic auth. */
  | { kind: "password" }
  /** With no password set: any loopback client, for reading only. */
  | { kind: "loopback" };

/** Verified Basic credentials are remembered this long, so a scrape every 15 s costs no scrypt. */
const BASIC_TTL_MS = 60_000;

/**
 * Who may reach the admin and as whom. With no admin.password, loopback clients only (and only by
 * a loopback Host, so a web page cannot reach the admin by pointing its own name at 127.0.0.1);
 * with one, clients in admin.clients, and every answer but the login page needs a login, the
 * CLI's token or the password. Every change also needs proof that no other site sent it: the
 * session's CSRF token in X-CSRF-Token (or the token or password, which browsers never send on
 * their own).
 */
export class Guard {
  private readonly basic = new Map<string, number>();
  private clients: { key: readonly string[]; set: AddressSet } | undefined;

  constructor(
    private readonly state: AdminState,
    private readonly password: () => string,
    private readonly allowed: () => readonly string[],
    private readonly sessionMs: () => number,
  ) {}

  get passwordSet(): boolean {
    return this.password() !== "";
  }

  /** Refuses a client that may not reach the admin at all. */
  checkReach(req: IncomingMessage, client: string): void {
    if (!this.passwordSet) {
      if (!isLoopback(client)) {
        throw new AdminError(
          403,
          "GH_ADMIN_LOOPBACK_ONLY",
          "the admin answers loopback clients only while admin.password is empty; set one with `gatehouse passwd`",
        );
      }
      if (!loopbackHost(req.headers.host)) {
        throw new AdminError(
          403,
          "GH_ADMIN_HOST",
          "with no admin.password the admin answers only at a loopback address (http://127.0.0.1:PORT/ or http://localhost:PORT/)",
        );
      }
      return;
    }
    const list = this.allowed();
    if (this.clients?.key !== list) this.clients = { key: list, set: new AddressSet(list) };
    if (!this.clients.set.has(client)) {
      throw new AdminError(403, "GH_ADMIN_CLIENT", `${client} is not in admin.clients`);
    }
  }

  /** The principal behind a request, or undefined if it has none. Wrong credentials count as failed logins. */
  async identify(req: IncomingMessage, client: string): Promise<Principal | undefined> {
    this.state.sessions.bindTo(this.password());
    const session = this.state.sessions.use(readCookie(req.headers.cookie, COOKIE), this.sessionMs());
    if (session) return { kind: "session", session };
    const auth = req.headers.authorization;
    if (auth) {
      const bearer = /^Bearer\s+(\S+)$/i.exec(auth);
      if (bearer && sameSecret(bearer[1] as string, this.state.token)) return { kind: "token" };
      const basic = /^Basic\s+(\S+)$/i.exec(auth);
      if (basic && this.passwordSet && (await this.checkBasic(basic[1] as string, client))) return { kind: "password" };
      throw new AdminError(401, "GH_ADMIN_BAD_CREDENTIALS", "the Authorization header holds a wrong token or password");
    }
    if (!this.passwordSet) return { kind: "loopback" };
    return undefined;
  }

  private async checkBasic(encoded: string, client: string): Promise<boolean> {
    const key = createHash("sha256").update(`${this.password()}\n${encoded}`).digest("hex");
    const until = this.basic.get(key);
    if (until !== undefined && until > Date.now()) return true;
    this.throttle(client);
    const password = Buffer.from(encoded, "base64")
      .toString("utf8")
      .replace(/^[^:]*:/, "");
    if (!(await verifyPassword(password, this.password()))) {
      this.state.limiter.failed(client);
      return false;
    }
    this.state.limiter.succeeded(client);
    if (this.basic.size >= 16) this.basic.clear();
    this.basic.set(key, Date.now() + BASIC_TTL_MS);
    return true;
  }

  /** 429 while a client is over its failed logins. */
  throttle(client: string): void {
    const wait = this.state.limiter.wait(client);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new AdminError(
        429,
        "GH_ADMIN_LOGIN_LIMIT",
        `too many failed logins from ${client}; try again in ${seconds} s`,
        { retryAfter: seconds },
        { "retry-after": String(seconds) },
      );
    }
  }

  /** A change must carry the session's CSRF token, and a browser's Origin must be this admin's own. */
  checkChange(req: IncomingMessage, p: Principal): void {
    if (p.kind === "token" || p.kind === "password") return;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== "null") {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host !== req.headers.host) {
        throw new AdminError(403, "GH_ADMIN_CROSS_SITE", `a change sent from another site (${origin.slice(0, 100)}) is refused`);
      }
    }
    const sent = req.headers["x-csrf-token"];
    if (p.kind !== "session" || typeof sent !== "string" || !sameSecret(sent, p.session.csrf)) {
      throw new AdminError(
        403,
        "GH_ADMIN_CSRF",
        p.kind === "session" && sent !== undefined
          ? "the X-CSRF-Token header does not match this session; reload the page"
          : "a change needs the X-CSRF-Token header from GET /api/session (or the CLI's token)",
      );
    }
  }
}

function loopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::\d+)?$/.exec(host);
  const name = (m?.[1] ?? m?.[2] ?? "").toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return isIP(name) !== 0 && isLoopback(name);
}
