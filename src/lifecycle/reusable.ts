import type { Part } from "./part.js";

export interface ReusableHooks<T> {
  /** Acquire what the value needs before it serves (compile, open an index); nothing running is touched. */
  prepare?(value: T): Promise<void>;
  /** Start it (watchers, timers, subscriptions) once the reload is decided. */
  start?(value: T): void;
  /** Release everything it holds. */
  close(value: T): Promise<void> | void;
  /** Work a kept value does when a reload passes it on (rescan its files). */
  kept?(value: T): void;
}

/**
 * A part whose value is kept across a reload when its config did not change (the caches, the rules
 * store, a log file), and made anew otherwise. A kept value is never prepared, started or closed
 * again: it just changes owner at commit.
 */
export class Reusable<T> implements Part {
  readonly value: T;
  private readonly from: Reusable<T> | undefined;
  private handedOn = false;
  private started = false;

  constructor(
    readonly name: string,
    previous: Reusable<T> | undefined,
    keep: (previous: T) => boolean,
    create: () => T,
    private readonly hooks: ReusableHooks<T>,
  ) {
    this.from = previous && !previous.handedOn && keep(previous.value) ? previous : undefined;
    this.value = this.from ? this.from.value : create();
  }

  get reused(): boolean {
    return this.from !== undefined;
  }

  async prepare(): Promise<void> {
    if (!this.from) await this.hooks.prepare?.(this.value);
  }

  commit(): void {
    if (this.from) {
      this.from.handedOn = true;
      this.started = true;
      this.hooks.kept?.(this.value);
      return;
    }
    this.started = true;
    this.hooks.start?.(this.value);
  }

  async abort(): Promise<void> {
    if (!this.from) await this.hooks.close(this.value);
  }

  async dispose(): Promise<void> {
    if (this.handedOn || !this.started) return;
    this.started = false;
    await this.hooks.close(this.value);
  }
}
