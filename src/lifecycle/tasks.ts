// Work that runs without a client waiting for it (a prefetch, a stale-while-revalidate refresh, a
// list download, a disk write, a compile) has an owner here: its failure is logged with what it was,
// never left as an unhandled rejection (which ends a Node process), and dispose() lets the part that
// started it wait for it to settle before it closes what the task uses.

export interface TaskLog {
  warn(obj: object, msg: string): void;
}

export class Tasks {
  private readonly running = new Set<Promise<unknown>>();
  private failures = 0;

  constructor(
    private readonly log: TaskLog,
    private readonly owner: string,
  ) {}

  /** Starts `work` in the background; a rejection is logged as "<owner>: <what> failed: <reason>". */
  run(what: string, work: () => Promise<unknown>): void {
    let p: Promise<unknown>;
    try {
      p = work();
    } catch (err) {
      this.failed(what, err);
      return;
    }
    const tracked = p.then(
      () => undefined,
      (err: unknown) => this.failed(what, err),
    );
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
  }

  private failed(what: string, err: unknown): void {
    this.failures++;
    const reason = err instanceof Error ? err.message : String(err);
    this.log.warn({ task: what, err: reason }, `${this.owner}: ${what} failed: ${reason}`);
  }

  /** Tasks still running. */
  get size(): number {
    return this.running.size;
  }

  /** Background failures so far (for stats and tests). */
  get failureCount(): number {
    return this.failures;
  }

  /** Resolves when every task started so far has settled (they never reject). */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
