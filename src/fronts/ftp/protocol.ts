import { servername } from "../tcp/backend.js";
import type { TcpProtocol } from "../tcp/protocol.js";
import { Relay } from "../tcp/relay.js";
import { type FtpAction, FtpDialogue } from "./control.js";
import { FtpData } from "./data.js";
import { PassivePorts } from "./passive.js";

/** ftp (21, AUTH TLS) and ftps (990, implicit TLS). */
export function ftpProtocol(implicitTls: boolean): TcpProtocol {
  // One passive range per front config; a reload makes a new one (ports in use are skipped).
  const ranges = new Map<string, PassivePorts>();
  return {
    implicitTls,
    // vsftpd and ProFTPD close idle sessions after 5 minutes; a longer wait here is never the cause.
    idleMs: 15 * 60_000,
    lines: {
      idle: "421 Idle for too long; closing the connection",
      overlong: "500 Line too long; closing the connection",
      // RFC 959 §4.2: 421 when the service is shutting down.
      shutdown: "421 Service not available, closing control connection",
    },
    refusal: {
      denied: "421 Access denied by this site's firewall rules",
      busy: "421 Too many connections from your address; try again later",
      down: "421 The FTP server is not available; try again later",
    },
    banner: /^220 /,
    goodbye: "QUIT",
    session(ctx, base) {
      const range = ctx.front.passive as string;
      const ports = ranges.get(range) ?? PassivePorts.parse(range);
      ranges.set(range, ports);
      const dialogue = new FtpDialogue({
        clientTls: ctx.clientTls,
        backendTls: ctx.front.backendTls,
        client: ctx.client.address,
        local: ctx.local.address,
        announce: ctx.front.passiveAddress,
      });
      let data: FtpData | undefined;
      const relay = new Relay<FtpAction>({
        ...base,
        onEnd: (end) => {
          data?.close();
          base.onEnd(end);
        },
        dialogue,
        lines: this.lines,
        limits: { client: 8192, backend: 8192 },
        clientTls: ctx.serverTls,
        backendName: servername(ctx.backend.host),
        extra: (a) => data?.handle(a),
        log: ctx.log,
        who: ctx.who,
      });
      data = new FtpData(relay, dialogue, ctx, ports, base.idleMs);
      return relay;
    },
  };
}
