import { Redis } from "ioredis";
import { within } from "../lifecycle/within.js";
import type { Logger } from "../log/logger.js";

// The connection to the Redis/Valkey that several boxes share. Everything that goes through it is
// an extra: a box answers its DNS queries and HTTP requests whether Redis is there, slow or gone.
// So: no offline queue (a command while disconnected fails at once instead of waiting), a short
// deadline on every command, and a circuit breaker: after one failure Redis is skipped (every
// read answers "nothing" without a round trip) until a background PING finds it again. The
// admin hears one warning when it goes and one line when it comes back, however many queries
// came in between.

/** Every command: a LAN round trip is well under a millisecond; past this Redis is the slow path. */
export const DEADLINE_MS = 50;
/** After a failure, Redis is left alone this long before a PING tries it again. */
export const COOL_OFF_MS = 3_000;
/** How long prepare waits for the first connection before the box starts alone. */
const CONNECT_WAIT_MS = 1_000;
/** Background writes in flight at once; past this, writes are dropped (memory stays bounded). */
const MAX_PENDING = 1_000;
/** A refused command (OOM, READONLY) is not an outage: it is warned about at most this often. */
const REPLY_WARN_EVERY_MS = 10 * 60_000;

export type SharedState = "off" | "connecting" | "up" | "down";

export interface SharedStatus {
  /** The URL without its password. */
  redis: string;
  state: SharedState;
  /** Epoch ms of the last change of state. */
  since: number;
  /** Commands that failed: no answer in time, connection lost or refused, refused by Redis. */
  failures: number;
  /** Writes not made: Redis was not up, or too many were in flight. */
  dropped: number;
  /** The reason of the last failure, if any. */
  lastError?: string;
}

export interface SharedRedisOptions {
  deadlineMs?: number;
  coolOffMs?: number;
}

/**
 * One client to the shared Redis with a circuit breaker. read() answers undefined without a round
 * trip while Redis is not up; write() runs in the background, owned here: a failure trips the
 * breaker (one warning), never a log line per query. open() never throws: a box whose Redis is
 * down starts and serves alone, and the client reconnects on its own.
 */
export class SharedRedis {
  private client: Redis | undefined;
  private state: SharedState = "off";
  private since = Date.now();
  private failures = 0;
  private dropped = 0;
  private lastError: string | undefined;
  private lastReplyWarn = 0;
  /** Whether "went away" was said, so "is back" is said once and only after it. */
  private warned = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private closed = false;
  private readonly pending = new Set<Promise<void>>();
  private readonly deadlineMs: number;
  private readonly coolOffMs: number;

  constructor(
    /** shared.redis; undefined or "": no sharing, every call is a no-op. */
    readonly url: string | undefined,
    private readonly log: Logger,
    opts: SharedRedisOptions = {},
  ) {
    this.deadlineMs = opts.deadlineMs ?? DEADLINE_MS;
    this.coolOffMs = opts.coolOffMs ?? COOL_OFF_MS;
  }

  get enabled(): boolean {
    return this.url !== undefined && this.url !== "";
  }

  get up(): boolean {
    return this.state === "up";
  }

  /** The URL as it may be shown and logged: no password. */
  get label(): string {
    return redact(this.url ?? "");
  }

  status(): SharedStatus {
    return {
      redis: this.label,
      state: this.state,
      since: this.since,
      failures: this.failures,
      dropped: this.dropped,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /**
   * Connects, waiting a moment for the first connection so a box that starts beside a working
   * Redis shares from its first query. Never throws: without Redis the box serves alone.
   */
  async open(): Promise<void> {
    if (!this.enabled || this.client) return;
    const client = new Redis(this.url as string, {
      lazyConnect: true,
      enableOfflineQueue: false,
      // A command in flight when the connection drops fails at once rather than being sent again
      // after a reconnect nobody waits for.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: CONNECT_WAIT_MS,
      // A Redis host that vanished without a reset (power, cable) is noticed by TCP keepalive.
      keepAlive: 10_000,
      retryStrategy: (times) => Math.min(times * 250, 2_000),
    });
    this.client = client;
    this.setState("connecting");
    // Without a listener, ioredis prints every connection error to the console.
    client.on("error", (err: Error) => this.failed(err));
    client.on("close", () => {
      if (this.state === "up") this.failed(new Error("connection closed"));
    });
    client.on("ready", () => void this.probe());
    await within(
      client.connect().then(
        () => this.probe(),
        // Said by the "error" event already; ioredis goes on reconnecting.
        () => {},
      ),
      CONNECT_WAIT_MS,
    );
    if (this.state === "connecting") this.wentAway(new Error(`no connection within ${CONNECT_WAIT_MS} ms`));
  }

  /**
   * A command whose answer a client may be waiting for (a cache lookup): undefined at once while
   * Redis is not up, and undefined when it fails or misses its deadline (the breaker trips).
   */
  read<T>(fn: (r: Redis) => Promise<T>): Promise<T | undefined> | undefined {
    const client = this.client;
    if (this.state !== "up" || client === undefined) return undefined;
    let p: Promise<T>;
    try {
      p = this.inTime(fn(client));
    } catch (err) {
      this.failed(err);
      return undefined;
    }
    return p.then(
      (v) => v,
      (err: unknown) => {
        this.failed(err);
        return undefined;
      },
    );
  }

  /**
   * A command nobody waits for (storing an answer, a purge, counters). Skipped while Redis is not
   * up and dropped when too many are in flight; a failure trips the breaker. close() waits for them.
   */
  write(fn: (r: Redis) => Promise<unknown>): void {
    const client = this.client;
    if (!this.accepts() || client === undefined) return;
    let p: Promise<unknown>;
    try {
      p = this.inTime(fn(client));
    } catch (err) {
      this.failed(err);
      return;
    }
    const tracked = p.then(
      () => undefined,
      (err: unknown) => this.failed(err),
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /**
   * Whether a write would be made now; one that would not is counted as dropped. For a writer
   * that prepares its value first (an HTTP entry's encoding), so it does not while Redis is down.
   */
  accepts(): boolean {
    if (this.state === "up" && this.pending.size < MAX_PENDING) return true;
    if (this.enabled) this.dropped++;
    return false;
  }

  /** Writes in flight settle (they never reject); then the connection is closed. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probeTimer);
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    this.client?.disconnect();
    this.client = undefined;
    if (this.enabled) this.setState("off");
  }

  /**
   * `p`, or a rejection once the deadline passed. Not ioredis's commandTimeout: a timer that fires
   * late says this process was busy (a long synchronous task, a GC pause), not that Redis was slow,
   * and the reply may be waiting in the socket. So the rejection waits for the event loop's next
   * check phase, after the I/O that arrived in the meantime has been read.
   */
  private inTime<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => setImmediate(() => reject(new Error(`no answer within ${this.deadlineMs} ms`))),
        this.deadlineMs,
      );
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private failed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.failures++;
    this.lastError = message;
    if (err instanceof Error && err.name === "ReplyError") {
      // Redis answered, and refused (full with maxmemory-policy noeviction, a read-only replica):
      // the connection is fine, tripping the breaker would only make it flap.
      const now = Date.now();
      if (now - this.lastReplyWarn >= REPLY_WARN_EVERY_MS) {
        this.lastReplyWarn = now;
        this.log.warn(
          { redis: this.label, err: message },
          `shared Redis at ${this.label} refuses commands (${message}): give it maxmemory-policy allkeys-lru and make it a primary, not a replica`,
        );
      }
      return;
    }
    if (this.state === "up" || this.state === "connecting") this.wentAway(err);
  }

  private wentAway(err: unknown): void {
    if (this.closed) return;
    const message = err instanceof Error ? err.message : String(err);
    this.setState("down");
    if (!this.warned) {
      this.warned = true;
      this.log.warn(
        { redis: this.label, err: message },
        `shared Redis at ${this.label} is unreachable (${message}): this box serves from its own caches and retries every ${
          this.coolOffMs / 1000
        } s`,
      );
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.probe(), this.coolOffMs);
    this.probeTimer.unref();
  }

  /**
   * A PING within the deadline brings Redis back into use; a failed one waits another cool-off.
   * Never rejects; one runs at a time (the connection's "ready" and the timer may both ask).
   */
  private probe(): Promise<void> {
    this.probing ??= this.ping().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async ping(): Promise<void> {
    const client = this.client;
    if (this.closed || client === undefined || this.state === "up") return;
    if (client.status !== "ready") {
      // ioredis is reconnecting on its own; "ready" calls this again as soon as it is connected.
      if (this.state === "down") this.scheduleProbe();
      return;
    }
    try {
      await this.inTime(client.ping());
    } catch (err) {
      this.failures++;
      this.lastError = err instanceof Error ? err.message : String(err);
      // Connected but not answering in time: a fresh connection may do better than a stuck one.
      if (!this.closed) client.disconnect(true);
      if (this.state === "connecting") this.wentAway(err);
      else this.scheduleProbe();
      return;
    }
    if (this.closed) return;
    clearTimeout(this.probeTimer);
    this.setState("up");
    if (this.warned) this.log.info({ redis: this.label }, `shared Redis at ${this.label} is back: sharing again`);
    else this.log.info({ redis: this.label }, `sharing caches and counters through Redis at ${this.label}`);
    this.warned = false;
  }

  private setState(state: SharedState): void {
    if (this.state === state) return;
    this.state = state;
    this.since = Date.now();
  }
}

/** redis://user:secret@host:6379/0 -> redis://user:***@host:6379/0 */
export function redact(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
}
