import type { AddressInfo } from "node:net";
import type { SecureContext } from "node:tls";
import type { FrontConfig } from "../config/fronts-schema.js";
import type { Events } from "../events/events.js";
import type { Activity } from "../http/activity.js";
import type { Part } from "../lifecycle/part.js";
import type { Logger } from "../log/logger.js";
import type { RuleSet } from "../rules/ruleset.js";
import type { BackendStatus } from "./health.js";

/** The certificates a front presents (tls/cert-store.ts through the TLS part). */
export interface FrontCertificates {
  /** By the server name the client asked for; a leaf from the office CA when no pair matches. */
  contextFor(servername: string | undefined): SecureContext | undefined;
  /** The pair a front names in tls.cert. */
  named(name: string): { context: SecureContext } | undefined;
}

/** What every front gets from the generation that builds it. */
export interface FrontDeps {
  log: Logger;
  events: Events;
  /** The rules in force: the firewall may allow or deny front clients by address (and port). */
  rules: () => RuleSet;
  certs: () => FrontCertificates;
  /** Open connections, so a stop waits for them within shutdownGrace and then cuts them. */
  activity: Activity;
  /** tls.handshakeTimeout: a client must finish its TLS handshake (implicit or after STARTTLS) within this. */
  handshakeTimeoutMs: number;
}

/** One front (or, for web fronts, the fronts sharing a set of listeners) as a part of a generation. */
export interface FrontPart extends Part {
  readonly fronts: string[];
  readonly addresses: AddressInfo[];
  /** Backends and their health, for the dashboard and metrics. */
  health(): { front: string; backends: BackendStatus[] }[];
  /** Stops accepting at once (SIGTERM); resolves when the last open connection has ended. */
  stopAccepting(): Promise<void>;
}

/** Makes the part of one FTP or mail front; `previous` is the part it replaces on a reload. */
export type TcpFrontFactory = (front: FrontConfig, deps: FrontDeps, previous: FrontPart | undefined) => FrontPart;
