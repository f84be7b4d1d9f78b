import { hostname } from "node:os";
import { servername } from "../tcp/backend.js";
import type { Dialogue } from "../tcp/dialogue.js";
import type { RelayBase, SessionContext, SessionHandle, TcpProtocol } from "../tcp/protocol.js";
import { Relay, type RelayOptions } from "../tcp/relay.js";
import { ImapDialogue } from "./imap.js";
import { Pop3Dialogue } from "./pop3.js";
import { SmtpDialogue } from "./smtp.js";

const MINUTE = 60_000;

function relay(
  ctx: SessionContext,
  base: RelayBase,
  dialogue: Dialogue,
  p: TcpProtocol,
  limits: RelayOptions<never>["limits"],
): SessionHandle {
  return new Relay({
    ...base,
    dialogue,
    lines: p.lines,
    limits,
    clientTls: ctx.serverTls,
    backendName: servername(ctx.backend.host),
    log: ctx.log,
    who: ctx.who,
  });
}

/** smtp (25, MX), submission (587), smtps (465, implicit TLS). */
export function smtpProtocol(implicitTls: boolean): TcpProtocol {
  const p: TcpProtocol = {
    implicitTls,
    // RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for the next command.
    idleMs: 5 * MINUTE,
    lines: {
      idle: "421 4.4.2 Idle for too long; closing the connection",
      overlong: "500 5.5.2 Line too long; closing the connection",
      // RFC 5321 §3.8: 421 when the server must shut down.
      shutdown: "421 4.3.2 Service shutting down; try again later",
    },
    refusal: {
      denied: "554 5.7.1 Access denied by this site's firewall rules",
      busy: "421 4.7.0 Too many connections from your address; try again later",
      down: "421 4.3.0 The mail server is not available; try again later",
    },
    banner: /^220[ -]/,
    goodbye: "QUIT",
    session: (ctx, base) =>
      relay(
        ctx,
        base,
        new SmtpDialogue({
          clientTls: ctx.clientTls,
          backendStarttls: ctx.front.backendTls === "starttls",
          xclient: ctx.front.clientAddress === "xclient" ? ctx.client : undefined,
          ehloName: hostname(),
          authNeedsTls: true,
        }),
        p,
        // RFC 5321 §4.5.3.1 allows 512-byte command lines; SASL responses (AUTH, XOAUTH2) run longer.
        { client: 16 * 1024, backend: 4096 },
      ),
  };
  return p;
}

/** pop3 (110, STLS), pop3s (995). */
export function pop3Protocol(implicitTls: boolean): TcpProtocol {
  const p: TcpProtocol = {
    implicitTls,
    // RFC 1939 §3: the autologout timer is at least 10 minutes.
    idleMs: 10 * MINUTE,
    lines: {
      idle: "-ERR Idle for too long; closing the connection",
      overlong: "-ERR Line too long; closing the connection",
      shutdown: "-ERR Server shutting down",
    },
    refusal: {
      denied: "-ERR [SYS/PERM] Access denied by this site's firewall rules",
      busy: "-ERR [SYS/TEMP] Too many connections from your address; try again later",
      down: "-ERR [SYS/TEMP] The mail server is not available; try again later",
    },
    banner: /^\+OK/,
    goodbye: "QUIT",
    session: (ctx, base) =>
      relay(ctx, base, new Pop3Dialogue({ clientTls: ctx.clientTls, backendStls: ctx.front.backendTls === "starttls" }), p, {
        client: 8192,
        backend: 8192,
      }),
  };
  return p;
}

/** imap (143, STARTTLS), imaps (993). */
export function imapProtocol(implicitTls: boolean): TcpProtocol {
  const p: TcpProtocol = {
    implicitTls,
    // RFC 9051 §5.4: at least 30 minutes of inactivity before autologout, so IDLE lives that long.
    idleMs: 31 * MINUTE,
    lines: {
      idle: "* BYE Autologout; idle for too long",
      overlong: "* BYE Line too long; closing the connection",
      // RFC 9051 §7.1.5: BYE when the server is shutting down.
      shutdown: "* BYE Server shutting down",
    },
    refusal: {
      denied: "* BYE Access denied by this site's firewall rules",
      busy: "* BYE [UNAVAILABLE] Too many connections from your address; try again later",
      down: "* BYE [UNAVAILABLE] The mail server is not available; try again later",
    },
    banner: /^\* (OK|PREAUTH)\b/i,
    goodbye: "gh LOGOUT",
    // Dovecot's imap_max_line_length is 64 KiB; a backend's SEARCH or FETCH line can be far longer.
    session: (ctx, base) =>
      relay(ctx, base, new ImapDialogue({ clientTls: ctx.clientTls, backendStarttls: ctx.front.backendTls === "starttls" }), p, {
        client: 64 * 1024,
        backend: 4 * 1024 * 1024,
      }),
  };
  return p;
}
