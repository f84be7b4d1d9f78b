import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { Gatehouse } from "../../src/app.js";
import { type ConfigInput, configSchema } from "../../src/config/schema.js";
import { AccessLog } from "../../src/log/access-log.js";
import { type Logger, silentLogger } from "../../src/log/logger.js";

export interface TestProxy {
  app: Gatehouse;
  port: number;
  accessLines: string[];
  close(): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** gatehouse on 127.0.0.1:0 with no DNS listener; the access log is captured in memory. */
export async function startProxy(overrides: DeepPartial<ConfigInput> = {}, log: Logger = silentLogger()): Promise<TestProxy> {
  const input = {
    ...overrides,
    proxy: { listen: ["127.0.0.1:0"], ...(overrides.proxy ?? {}) },
    // No DNS listener, and an upstream that refuses at once: tests never reach a real nameserver.
    dns: { listen: [], upstreams: ["127.0.0.1:9"], ...(overrides.dns ?? {}) },
    admin: { listen: "127.0.0.1:0", ...(overrides.admin ?? {}) },
  };
  const config = configSchema.parse(input);
  const accessLines: string[] = [];
  const app = await Gatehouse.start({
    config,
    log,
    accessLog: AccessLog.toFunction((l) => accessLines.push(l), config.log.access.format),
  });
  const port = app.proxyAddresses[0]?.port ?? 0;
  return { app, port, accessLines, close: () => app.stop() };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request through the proxy in absolute form, the way a browser configured with a proxy sends it. */
export function viaProxy(
  proxyPort: number,
  url: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: proxyPort, method: opts.method ?? "GET", path: url, headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes and collects everything until the server closes or `until` matches. */
export function rawExchange(port: number, data: string | Buffer, until?: RegExp, deadlineMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1", () => socket.write(data));
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${deadlineMs} ms; got: ${JSON.stringify(text.slice(0, 300))}`));
    }, deadlineMs);
    socket.on("data", (c: Buffer) => {
      text += c.toString("latin1");
      if (until?.test(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on("error", () => {});
  });
}

/** Polls until `check` returns true or the deadline passes; for events that have no hook. */
export async function eventually(check: () => boolean | Promise<boolean>, deadlineMs = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what} not met within ${deadlineMs} ms`);
}
