import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { hashPassword } from "../../src/admin/auth/password.js";
import { Gatehouse } from "../../src/app.js";
import { type ConfigInput, configSchema } from "../../src/config/schema.js";
import { AccessLog } from "../../src/log/access-log.js";
import { type Logger, silentLogger } from "../../src/log/logger.js";
import { rulesDir } from "./rules.js";

export interface TestAdmin {
  app: Gatehouse;
  /** http://127.0.0.1:PORT */
  base: string;
  proxyPort: number;
  dnsPort: number;
  rules: string;
  state: string;
  close(): Promise<void>;
}

export interface AdminOptions {
  /** Files of a fresh rules directory. */
  files?: Record<string, string>;
  /** The admin.password hash (see testHash). */
  password?: string;
  /** Other config keys; admin, proxy and dns below are merged over the test defaults. */
  config?: Omit<ConfigInput, "admin" | "proxy" | "dns">;
  admin?: ConfigInput["admin"];
  proxy?: ConfigInput["proxy"];
  dns?: ConfigInput["dns"];
  /** admin.state to use (to start again on the same history); a fresh one otherwise. */
  state?: string;
  log?: Logger;
}

/**
 * gatehouse with the admin, the proxy and the DNS on 127.0.0.1:0, a fresh rules directory and its
 * own admin.state, and DNS upstreams that only the test started (or 127.0.0.1:9, which refuses).
 */
export async function startAdmin(o: AdminOptions = {}): Promise<TestAdmin> {
  const rules = rulesDir(o.files ?? {});
  const state = o.state ?? mkdtempSync(join(tmpdir(), "gatehouse-admin-"));
  const config = configSchema.parse({
    rules,
    listsDir: join(rules, "lists"),
    log: { queries: { file: "" } },
    ...o.config,
    proxy: { listen: ["127.0.0.1:0"], ...o.proxy },
    dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:9"], ...o.dns },
    admin: { listen: "127.0.0.1:0", state, password: o.password ?? "", ...o.admin },
  });
  const app = await Gatehouse.start({
    config,
    log: o.log ?? silentLogger(),
    accessLog: AccessLog.toFunction(() => {}, "squid"),
  });
  return {
    app,
    base: `http://127.0.0.1:${app.adminAddress?.port}`,
    proxyPort: app.proxyAddresses[0]?.port ?? 0,
    dnsPort: app.dnsAddresses[0]?.port ?? 0,
    rules,
    state,
    close: () => app.stop(),
  };
}

let cachedHash: Promise<string> | undefined;
export const TEST_PASSWORD = "correct horse battery";

/** The hash of TEST_PASSWORD, made once per test file (scrypt is deliberately slow). */
export function testHash(): Promise<string> {
  cachedHash ??= hashPassword(TEST_PASSWORD);
  return cachedHash;
}

export interface ApiReply<T = Record<string, unknown>> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export interface CallOptions {
  body?: unknown;
  /** A raw body, sent as it is (with contentType). */
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  session?: Session;
}

export interface Session {
  cookie: string;
  csrf: string;
}

/** One HTTP call to the admin, as a browser or a script would make it. */
export async function call<T = Record<string, unknown>>(
  base: string,
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  o: CallOptions = {},
): Promise<ApiReply<T>> {
  const headers: Record<string, string> = { ...o.headers };
  let body: string | Buffer | undefined;
  if (o.raw !== undefined) {
    body = o.raw;
    headers["content-type"] = o.contentType ?? "application/json";
  } else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers["content-type"] = o.contentType ?? "application/json";
  }
  if (o.session) {
    headers.cookie = o.session.cookie;
    if (method !== "GET" && headers["x-csrf-token"] === undefined) headers["x-csrf-token"] = o.session.csrf;
  }
  const res = await request(`${base}${path}`, { method, headers, body });
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (metrics, pages): the text is the body.
  }
  return { status: res.statusCode, headers: res.headers, body: parsed as T, text };
}

/** Logs in with the password and returns the cookie and CSRF token. */
export async function login(base: string, password = TEST_PASSWORD): Promise<Session> {
  const r = await call<{ csrf: string }>(base, "POST", "/api/login", { body: { password } });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  const set = String(r.headers["set-cookie"] ?? "");
  return { cookie: set.split(";")[0] as string, csrf: r.body.csrf };
}

/** The session a loopback browser gets when no password is set. */
export async function loopbackSession(base: string): Promise<Session> {
  const r = await call<{ csrf: string }>(base, "GET", "/api/session");
  return { cookie: String(r.headers["set-cookie"] ?? "").split(";")[0] as string, csrf: r.body.csrf };
}
