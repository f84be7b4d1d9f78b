import type { FrontConfig } from "../config/fronts-schema.js";
import type { Events } from "../events/events.js";
import { Tasks } from "../lifecycle/tasks.js";
import type { Logger } from "../log/logger.js";

export interface BackendStatus {
  backend: string;
  up: boolean;
  /** Epoch ms of the last change. */
  since: number;
  lastError: string | undefined;
  /** Active checks completed so far. */
  checked: number;
}

interface State<B> {
  backend: B;
  up: boolean;
  since: number;
  /** Consecutive passes while down, consecutive failures while up. */
  streak: number;
  lastError: string | undefined;
  checked: number;
}

/**
 * The backends of one front and whether each is up: active checks at an interval (an HTTP GET, or a
 * TCP connect and banner, given by the front kind), and passive ones (a connection that fails
 * counts like a failed check). `fall` failures in a row take a backend down, `rise` passes bring it
 * back; a change is logged once and emitted as a health event. Traffic goes only to healthy
 * backends, round robin or first-healthy.
 */
export class Backends<B extends { label: string }> {
  private readonly states: State<B>[];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly tasks: Tasks;
  private checking = false;

  constructor(
    private readonly front: string,
    backends: readonly B[],
    private readonly cfg: Pick<FrontConfig, "balance" | "health">,
    /** One active check of a backend; throws with what is wrong. */
    private readonly check: (backend: B, timeoutMs: number) => Promise<void>,
    private readonly log: Logger,
    private readonly events: Events,
    previous?: Backends<B>,
  ) {
    this.tasks = new Tasks(log, `front ${front}`);
    // A reload keeps what is known of a backend that stays (same label): a dead server does not
    // come back to life because the config was touched.
    this.states = backends.map((backend) => {
      const known = previous?.states.find((s) => s.backend.label === backend.label);
      return known
        ? { ...known, backend }
        : { backend, up: true, since: Date.now(), streak: 0, lastError: undefined, checked: 0 };
    });
  }

  /** The backend for the next request or connection, or undefined when every one is down. */
  pick(): B | undefined {
    const n = this.states.length;
    if (this.cfg.balance === "first") return this.states.find((s) => s.up)?.backend;
    for (let i = 0; i < n; i++) {
      const s = this.states[(this.next + i) % n] as State<B>;
      if (!s.up) continue;
      this.next = (this.next + i + 1) % n;
      return s.backend;
    }
    return undefined;
  }

  /** A connection or request to the backend failed (passive check). */
  failed(backend: B, reason: string): void {
    const s = this.states.find((x) => x.backend === backend);
    if (s) this.record(s, false, reason);
  }

  /** Traffic went through: while up, the failure count starts again. */
  succeeded(backend: B): void {
    const s = this.states.find((x) => x.backend === backend);
    if (s?.up) s.streak = 0;
  }

  /** Starts the active checks (a first round at once). */
  start(): void {
    if (!this.cfg.health.enabled || this.timer) return;
    this.round();
    this.timer = setInterval(() => this.round(), this.cfg.health.interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tasks.settle();
  }

  status(): BackendStatus[] {
    return this.states.map((s) => ({
      backend: s.backend.label,
      up: s.up,
      since: s.since,
      lastError: s.lastError,
      checked: s.checked,
    }));
  }

  get allDown(): boolean {
    return this.states.every((s) => !s.up);
  }

  /** Seconds until the next check: what a 503 tells clients to wait (Retry-After). */
  get retryAfter(): number {
    return Math.max(1, Math.ceil(this.cfg.health.interval / 1000));
  }

  private round(): void {
    // A slow round is not stacked on another: checks have their own timeout.
    if (this.checking) return;
    this.checking = true;
    this.tasks.run("health checks", async () => {
      try {
        await Promise.all(
          this.states.map((s) =>
            this.check(s.backend, this.cfg.health.timeout)
              .then(
                () => this.record(s, true, ""),
                (err: unknown) => this.record(s, false, err instanceof Error ? err.message : String(err)),
              )
              .finally(() => {
                s.checked++;
              }),
          ),
        );
      } finally {
        this.checking = false;
      }
    });
  }

  private record(s: State<B>, ok: boolean, reason: string): void {
    if (ok === s.up) {
      s.streak = 0;
      return;
    }
    s.streak++;
    if (!ok) s.lastError = reason;
    if (s.streak < (ok ? this.cfg.health.rise : this.cfg.health.fall)) return;
    s.up = ok;
    s.streak = 0;
    s.since = Date.now();
    const label = s.backend.label;
    if (ok) this.log.info({ front: this.front, backend: label }, `front ${this.front}: backend ${label} is up again`);
    else
      this.log.warn({ front: this.front, backend: label, reason }, `front ${this.front}: backend ${label} is down (${reason})`);
    this.events.health.emit({ time: s.since, front: this.front, backend: label, up: ok, reason: ok ? "checks pass" : reason });
  }
}
