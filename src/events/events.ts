import type { Decision, RuleRef } from "../pipeline/stage.js";

// What happened, emitted once by the part that saw it and fanned out to whoever listens (the log
// files today; metrics and the dashboard next), instead of each part writing logs itself.

/** One proxied request or tunnel, when it is over. */
export interface AccessEvent {
  /** Epoch ms when the request arrived. */
  start: number;
  durationMs: number;
  client: string;
  /** Which listener kind took it: forward, intercept, front. */
  listener: string;
  /** Squid's result code: TCP_MISS, TCP_HIT, TCP_DENIED, TCP_TUNNEL, NONE_NONE... */
  result: string;
  status: number;
  bytes: number;
  method: string;
  url: string;
  user?: string;
  hierarchy: string;
  peer: string;
  contentType?: string;
  id: string;
  /** The decision that settled the request, if a stage made one (block, deny, allow by rule). */
  decision?: Decision;
}

/** One DNS query from a client (not the proxy's own lookups), when it is answered or dropped. */
export interface QueryEvent {
  time: number;
  client: string;
  proto: "udp" | "tcp";
  name: string;
  /** Numeric type and rcode; names are for the sinks to format. -1: no answer was sent. */
  type: number;
  rcode: number;
  /** A short human summary of the answer: addresses, CNAME targets, MX/SRV/PTR/TXT data. */
  answer: string;
  result: string;
  upstream?: string;
  rule?: RuleRef;
  decisions: readonly Decision[];
  ms: number;
}

/** The rules in force changed (or were first loaded): counts for metrics and the dashboard. */
export interface RulesEvent {
  time: number;
  /** "loaded": a rules store started serving; "changed": a file changed, was added or removed. */
  reason: "loaded" | "changed";
  files: number;
  entries: number;
  /** Problems in the files now (a file with errors keeps its last good version in force). */
  errors: number;
}

type Report = (channel: string, err: unknown) => void;

/** A synchronous fan-out: emitting costs a loop over the subscribers, nothing when there are none. */
export class Channel<E> {
  private subscribers: ((e: E) => void)[] = [];

  constructor(
    private readonly name: string,
    private readonly report: Report,
  ) {}

  /** True when someone listens: producers skip building an event nobody reads. */
  get active(): boolean {
    return this.subscribers.length > 0;
  }

  get count(): number {
    return this.subscribers.length;
  }

  subscribe(fn: (e: E) => void): () => void {
    this.subscribers = [...this.subscribers, fn];
    return () => {
      this.subscribers = this.subscribers.filter((s) => s !== fn);
    };
  }

  emit(e: E): void {
    for (const s of this.subscribers) {
      try {
        s(e);
      } catch (err) {
        // A failing sink must never fail the request or query that produced the event.
        this.report(this.name, err);
      }
    }
  }
}

/** One connection through an FTP or mail front (web fronts' requests are access events), when it ends. */
export interface SessionEvent {
  /** Epoch ms when the client connected. */
  start: number;
  durationMs: number;
  front: string;
  protocol: string;
  client: string;
  /** host:port of the backend, or "-" when none was reached. */
  backend: string;
  /** Bytes from the client, and to it. */
  bytesIn: number;
  bytesOut: number;
  /** "none", or the TLS version the client used ("TLSv1.3"). */
  tls: string;
  /** How it ended: "closed", "refused" (rules, limits), "backend-down", "error", "timeout". */
  result: string;
  detail?: string;
  decision?: Decision;
}

/** A backend of a front changed health: logged once, shown by the dashboard and metrics. */
export interface HealthEvent {
  time: number;
  front: string;
  backend: string;
  up: boolean;
  reason: string;
}

export class Events {
  readonly access: Channel<AccessEvent>;
  readonly query: Channel<QueryEvent>;
  readonly rules: Channel<RulesEvent>;
  readonly session: Channel<SessionEvent>;
  readonly health: Channel<HealthEvent>;

  constructor(report: Report = (channel, err) => process.emitWarning(`event sink for ${channel} failed: ${String(err)}`)) {
    this.access = new Channel("access", report);
    this.query = new Channel("query", report);
    this.rules = new Channel("rules", report);
    this.session = new Channel("session", report);
    this.health = new Channel("health", report);
  }
}
