import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../log/logger.js";
import type { Guard, Principal } from "../auth/guard.js";
import type { AdminSource, AdminState } from "../state.js";

/** One admin request as the handlers see it. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  client: string;
  principal: Principal | undefined;
  src: AdminSource;
  state: AdminState;
  guard: Guard;
  log: Logger;
}

/**
 * public: anyone who may reach the admin (the page itself, login); read: a login, the token or the
 * password; change: the same plus proof that no other site sent it (CSRF).
 */
export type Access = "public" | "read" | "change";

export interface Route {
  method: "GET" | "POST" | "PUT";
  path: string;
  access: Access;
  /** The JSON answer (200), or undefined when the handler answered itself (streams, text). */
  handle(c: Ctx): unknown | Promise<unknown>;
}

/** A query parameter, trimmed and cut to `max` characters; undefined when absent or empty. */
export function param(url: URL, name: string, max = 300): string | undefined {
  const v = url.searchParams.get(name)?.trim();
  return v ? v.slice(0, max) : undefined;
}
