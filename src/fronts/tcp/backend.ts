import { connect, isIP, type Socket } from "node:net";
import { proxyHeader } from "../../net/proxy-protocol.js";
import { Framer } from "./framer.js";
import { secureAsClient } from "./tls.js";

export interface TcpBackend {
  /** "host:port", as configured: named in logs, health and session lines. */
  label: string;
  host: string;
  port: number;
}

export interface BackendDial {
  /** TLS from the first byte (backendTls: tls). */
  tls: boolean;
  /** Sent before anything else: a PROXY protocol header. */
  header?: Buffer;
  timeoutMs: number;
}

/** Connects to a backend (plain or TLS, after the PROXY header if any); rejects with what went wrong. */
export async function dialBackend(b: TcpBackend, dial: BackendDial): Promise<Socket> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: b.host, port: b.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no connection to ${b.label} within ${dial.timeoutMs / 1000}s`));
    }, dial.timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${b.label} (${err.code ?? err.message})`));
    });
  });
  socket.setNoDelay(true);
  if (dial.header) socket.write(dial.header);
  if (!dial.tls) return socket;
  return secureAsClient(socket, servername(b.host), undefined, dial.timeoutMs);
}

/** SNI carries host names only, never addresses. */
export function servername(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/**
 * The active health check of a TCP front's backend: connect (TLS if the front talks TLS to it, with
 * a PROXY header saying "no client" if it expects one), read the greeting, say goodbye so the server
 * does not log a lost connection every interval.
 */
export function bannerCheck(
  dial: Omit<BackendDial, "timeoutMs" | "header">,
  clientAddress: string,
  expect: RegExp,
  goodbye: string,
) {
  return async (b: TcpBackend, timeoutMs: number): Promise<void> => {
    const header =
      clientAddress === "proxy-v1" || clientAddress === "proxy-v2"
        ? proxyHeader(clientAddress, { client: { address: "", port: 0 }, local: { address: "", port: 0 } })
        : undefined;
    const socket = await dialBackend(b, { ...dial, header, timeoutMs });
    try {
      const banner = await firstReply(socket, timeoutMs);
      if (!expect.test(banner)) throw new Error(`unexpected greeting "${banner.slice(0, 80)}"`);
      socket.end(`${goodbye}\r\n`);
    } finally {
      setTimeout(() => socket.destroy(), 1_000).unref();
    }
  };
}

/** The first complete reply line ("220 ...", "+OK ...", "* OK ..."), skipping "220-" continuations. */
function firstReply(socket: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const framer = new Framer(4096);
    const timer = setTimeout(() => done(new Error(`no greeting within ${timeoutMs / 1000}s`)), timeoutMs);
    const done = (err: Error | undefined, line?: string) => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      if (err) reject(err);
      else resolve(line ?? "");
    };
    const onData = (chunk: Buffer) => {
      framer.push(chunk);
      for (let item = framer.next(); item; item = framer.next()) {
        if (item.kind !== "line") return done(new Error("the greeting is not a line of text"));
        if (!/^\d{3}-/.test(item.line)) return done(undefined, item.line);
      }
    };
    socket.on("data", onData);
    socket.once("error", (err) => done(err));
    socket.once("end", () => done(new Error("closed before its greeting")));
  });
}
