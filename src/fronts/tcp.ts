import type { TCP_PROTOCOLS } from "../config/fronts-schema.js";
import { ftpProtocol } from "./ftp/protocol.js";
import { imapProtocol, pop3Protocol, smtpProtocol } from "./mail/protocols.js";
import { TcpFront } from "./tcp/front.js";
import type { TcpProtocol } from "./tcp/protocol.js";
import type { TcpFrontFactory } from "./types.js";

// The FTP and mail fronts by protocol: each is the same part (tcp/front.ts: listeners, firewall,
// limits, TLS, backend health, session events) over its protocol's dialogue.

const factory =
  (protocol: TcpProtocol): TcpFrontFactory =>
  (front, deps, previous) =>
    new TcpFront(front, deps, protocol, previous);

export const TCP_FRONTS: Record<(typeof TCP_PROTOCOLS)[number], TcpFrontFactory> = {
  ftp: factory(ftpProtocol(false)),
  ftps: factory(ftpProtocol(true)),
  smtp: factory(smtpProtocol(false)),
  submission: factory(smtpProtocol(false)),
  smtps: factory(smtpProtocol(true)),
  pop3: factory(pop3Protocol(false)),
  pop3s: factory(pop3Protocol(true)),
  imap: factory(imapProtocol(false)),
  imaps: factory(imapProtocol(true)),
};
