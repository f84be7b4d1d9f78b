import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "undici";
import { TOKEN_FILE } from "../admin/state.js";
import type { Config } from "../config/schema.js";
import { parseListen } from "../net/address.js";

/** The admin API of the gatehouse that runs with this config, as the CLI reaches it. */
export class AdminClient {
  readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly dispatcher: Agent | undefined;
  /** Why the CLI has no token to send, when it has none. */
  private readonly noToken: string | undefined;

  constructor(config: Config) {
    const addr = parseListen(config.admin.listen);
    if (typeof addr === "string") throw new Error(`admin.listen: ${addr}`);
    const host = addr.host === undefined || addr.host === "0.0.0.0" || addr.host === "::" ? "127.0.0.1" : addr.host;
    this.base = `${config.admin.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
    if (config.admin.tls) {
      // The admin picks its certificate by name: ask for localhost, and check it against the office CA.
      const ca = join(config.certs, "ca.crt");
      let pem: string;
      try {
        pem = readFileSync(ca, "utf8");
      } catch {
        throw new Error(`admin.tls is on, and the CLI checks the admin's certificate against ${ca}, which cannot be read`);
      }
      this.dispatcher = new Agent({ connect: { ca: pem, servername: "localhost" } });
    }
    this.headers = {};
    // admin.password holds a hash, not the password: the CLI proves itself with the token the
    // running gatehouse leaves in admin.state, readable only by the user it runs as.
    const file = join(config.admin.state, TOKEN_FILE);
    if (config.admin.state === "") {
      this.noToken =
        'the CLI reads its token from admin.state, which is off (admin.state: ""); set admin.state (like ./var/admin) and restart gatehouse, so it leaves the token there for the CLI';
    } else {
      try {
        this.headers.authorization = `Bearer ${readFileSync(file, "utf8").trim()}`;
      } catch (err) {
        if (config.admin.password !== "" && (err as NodeJS.ErrnoException).code === "EACCES") {
          throw new Error(`cannot read ${file}; run this as the user gatehouse runs as`);
        }
        this.noToken = `the CLI reads its token from ${file}, which is not there; run this on the machine gatehouse runs on, with its config, as the user it runs as`;
      }
    }
  }

  /** A JSON call; throws NotRunning when nothing answers, Error with the API's message otherwise. */
  async call<T>(method: "GET" | "POST", path: string): Promise<T> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.base}${path}`, { method, headers: this.headers, dispatcher: this.dispatcher });
    } catch (err) {
      const e = err as { code?: string; errors?: { code?: string }[] };
      if (e.code === "ECONNREFUSED" || e.errors?.some((x) => x.code === "ECONNREFUSED")) throw new NotRunning(this.base);
      throw err;
    }
    const text = await res.body.text();
    // The admin's own 401 advice is for browsers (log in); the CLI cannot, and says what to do instead.
    if (res.statusCode === 401 && this.noToken)
      throw new NoToken(`the admin asks for a login (admin.password is set), and ${this.noToken}`);
    if (res.statusCode !== 200) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // Not JSON: show it as it is.
      }
      throw new ApiError(res.statusCode, message.trim());
    }
    return JSON.parse(text) as T;
  }
}

export class NotRunning extends Error {
  constructor(readonly base: string) {
    super(`no gatehouse answers on ${base} (admin.listen); is it running?`);
  }
}

/** The admin wants a login and the CLI has no token to prove itself with; the message says why and what to do. */
export class NoToken extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
