import type { Socket } from "node:net";
import { connect, type SecureContext, TLSSocket } from "node:tls";

/** The certificates a front presents: one named pair, or chosen by the name the client asks for. */
export interface ServerTls {
  context: SecureContext | undefined;
  sni: ((servername: string) => SecureContext | undefined) | undefined;
}

/** TLS as the server on a connected socket (implicit TLS, STARTTLS, FTP data): resolves once secure. */
export function secureAsServer(raw: Socket, tls: ServerTls, timeoutMs: number): Promise<TLSSocket> {
  const socket = new TLSSocket(raw, {
    isServer: true,
    secureContext: tls.context,
    SNICallback: tls.sni
      ? (name, cb) => {
          const ctx = tls.sni?.(name);
          cb(null, ctx);
        }
      : undefined,
  });
  return handshake(socket, "secure", timeoutMs, "the client sent no TLS handshake");
}

/**
 * TLS as the client towards a backend (the office's own server on the office network, often with a
 * self-signed certificate, so it is not verified), reusing `session` where the server asks for it
 * (vsftpd's require_ssl_reuse ties data connections to the control session).
 */
export function secureAsClient(
  raw: Socket,
  servername: string | undefined,
  session: Buffer | undefined,
  timeoutMs: number,
): Promise<TLSSocket> {
  const socket = connect({ socket: raw, servername, session, rejectUnauthorized: false });
  return handshake(socket, "secureConnect", timeoutMs, "the backend did not finish its TLS handshake");
}

function handshake(socket: TLSSocket, event: "secure" | "secureConnect", timeoutMs: number, late: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(new Error(`${late} within ${timeoutMs / 1000}s`));
      socket.destroy();
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.removeListener(event, ok);
      reject(new Error(`TLS handshake failed: ${err.message}`));
    };
    const ok = () => {
      clearTimeout(timer);
      socket.removeListener("error", fail);
      resolve(socket);
    };
    socket.once(event, ok);
    socket.once("error", fail);
    socket.once("close", () => fail(new Error("connection closed")));
  });
}

/** "TLSv1.3", or "none". */
export function tlsVersion(socket: Socket): string {
  return socket instanceof TLSSocket ? (socket.getProtocol() ?? "TLS") : "none";
}
