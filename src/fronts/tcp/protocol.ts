import type { Socket } from "node:net";
import type { FrontConfig } from "../../config/fronts-schema.js";
import type { Logger } from "../../log/logger.js";
import type { TcpBackend } from "./backend.js";
import type { ProtocolLines, SessionResult } from "./dialogue.js";
import type { ServerTls } from "./tls.js";

/** What a session of a TCP front knows when its dialogue starts. */
export interface SessionContext {
  front: FrontConfig;
  client: { address: string; port: number };
  /** The front's own address, as the client reached it. */
  local: { address: string; port: number };
  /** The client is on TLS already (implicit TLS: ftps, smtps, pop3s, imaps). */
  clientTls: boolean;
  backend: TcpBackend;
  serverTls: ServerTls;
  log: Logger;
  /** "client 192.0.2.7 of front mail", for messages. */
  who: string;
}

/** The sockets a session's relay is built over, with what the front decided for it. */
export interface RelayBase {
  client: Socket;
  backend: Socket;
  idleMs: number;
  /** Each TLS handshake (STARTTLS, AUTH TLS, with the client or the backend) must finish within this. */
  handshakeMs: number;
  onEnd(end: { result: SessionResult; reason: string }): void;
}

/** One protocol family of TCP fronts: its words, its limits, and how a session runs. */
export interface TcpProtocol {
  /** Clients start with TLS (ftps, smtps, pop3s, imaps). */
  implicitTls: boolean;
  /** The idle timeout when the config says 0. */
  idleMs: number;
  lines: ProtocolLines;
  /** Said to a client turned away before its session starts. */
  refusal: Record<"denied" | "busy" | "down", string>;
  /** Health check: the greeting a working backend sends, and how to leave. */
  banner: RegExp;
  goodbye: string;
  /** Builds the session's dialogue and its relay over the two sockets (started by the caller). */
  session(ctx: SessionContext, base: RelayBase): SessionHandle;
}

/** What the front needs of a running session (a Relay, whatever its dialogue). */
export interface SessionHandle {
  start(): void;
  destroy(result: SessionResult, reason: string): void;
  /** gatehouse is stopping: tell the client in the protocol's words, then close. */
  shutdown(): void;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly clientTls: string;
}
