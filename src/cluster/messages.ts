import type { AddressInfo } from "node:net";
import type { Config } from "../config/schema.js";
import type { AccessEvent, HealthEvent, QueryEvent, SessionEvent } from "../events/events.js";
import type { BackendStatus } from "../fronts/health.js";
import type { CacheStats } from "../http/cache/http-cache.js";
import type { CaSummary } from "../tls/ca.js";
import type { DiskIndexEntry } from "./disk-link.js";
import type { RulesDelta } from "./rules-mirror.js";

// What the supervisor and its workers say to each other over the cluster's IPC channel (Node's
// "advanced" serialization: structured clone, so typed arrays of compiled lists cross as they are).

/** Calls the supervisor makes of one worker, answered by a "result" with the same id. */
export type Call =
  | { op: "explain"; target: string; client: string | undefined }
  | { op: "purge"; url: string }
  | { op: "purgePrefix"; prefix: string }
  | { op: "reopenLogs" };

export type ToWorker =
  /** The first message: what to serve. Events are relayed only when someone looks (the admin is on). */
  | { t: "init"; config: Config; file: string | undefined; rules: RulesDelta; relay: boolean }
  /** A change every worker makes or none: a config (and the rules with it) or the rules alone. */
  | { t: "prepare"; id: number; config?: { config: Config; file: string | undefined }; rules?: RulesDelta }
  | { t: "commit"; id: number }
  | { t: "abort"; id: number }
  | { t: "call"; id: number; call: Call }
  | { t: "disk-learn"; entries: [string, DiskIndexEntry][] }
  | { t: "disk-forget"; keys: string[] }
  /** Responses another worker stored, for this worker's memory tier (see peer-cache.ts). */
  | { t: "cache-adopt"; entries: Uint8Array[] }
  /** Stop taking new work, finish what is open within the grace, exit. */
  | { t: "stop" };

export interface WorkerStatus {
  cache: CacheStats;
  fronts: { front: string; backends: BackendStatus[] }[];
  tls: { ca: CaSummary | undefined; passThrough: { client: string; host: string; since: number }[] };
}

export interface Addresses {
  proxy: AddressInfo[];
  dns: { address: string; port: number }[];
  fronts: AddressInfo[];
}

export type FromWorker =
  /** Listening for messages: the supervisor sends "init" on this (one sent earlier would be lost). */
  | { t: "hello" }
  | { t: "ready"; addresses: Addresses; status: WorkerStatus }
  | { t: "failed"; error: string }
  | { t: "prepared"; id: number; error?: string }
  | { t: "result"; id: number; value?: unknown; error?: string }
  /** Every batch interval: what happened, what the disk tier wrote and served, and the counters now. */
  | {
      t: "batch";
      access: AccessEvent[];
      query: QueryEvent[];
      session: SessionEvent[];
      health: HealthEvent[];
      stored: [string, DiskIndexEntry][];
      touched: string[];
      /** Responses this worker stored in memory, encoded, for the others. */
      cached: Uint8Array[];
      status: WorkerStatus;
    };
