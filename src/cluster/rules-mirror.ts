import type { Diagnostic } from "../config/diagnostic.js";
import { Channel } from "../events/events.js";
import { type RuleSource, reportListener, ruleSetOf } from "../rules/rules.js";
import { RuleSet } from "../rules/ruleset.js";
import type { FileKind, FileSummary, SnapshotEntry } from "../rules/store.js";

/** What the supervisor sends for a rules change: the files that changed, and every path now in force. */
export interface RulesDelta {
  entries: SnapshotEntry[];
  /** Path → stamp of every file in force after the change; a path not here was removed. */
  stamps: [string, string][];
}

interface Held {
  kind: FileKind;
  display: string;
  stamp: string;
  value: unknown;
  diagnostics: Diagnostic[];
}

/**
 * A worker's rules: the files the supervisor compiled and validated, applied in two steps so that
 * every worker switches to a rule set together or not at all. prepare() builds the next set beside
 * the one in force (and throws if it cannot); commit() swaps it in; abort() drops it.
 */
export class MirroredRules implements RuleSource {
  current: RuleSet = RuleSet.empty();
  private held = new Map<string, Held>();
  private next: { held: Map<string, Held>; set: RuleSet } | undefined;
  /** Told after every change to the compiled rules (a listener that throws is reported, not fatal). */
  private readonly changed = new Channel<void>("rules change", reportListener);
  private readonly kinds: Map<string, FileKind>;

  constructor(
    kinds: readonly FileKind[],
    private readonly rootsOf: () => string[],
  ) {
    this.kinds = new Map(kinds.map((k) => [k.name, k]));
  }

  get roots(): string[] {
    return this.rootsOf();
  }

  prepare(delta: RulesDelta): void {
    const held = new Map<string, Held>();
    for (const [abs, stamp] of delta.stamps) {
      const kept = this.held.get(abs);
      if (kept && kept.stamp === stamp) held.set(abs, kept);
    }
    for (const e of delta.entries) held.set(e.abs, this.revive(e));
    const missing = delta.stamps.filter(([abs]) => !held.has(abs)).map(([abs]) => abs);
    if (missing.length > 0) throw new Error(`rules handed over without ${missing.join(", ")}`);
    const values = <T>(kind: FileKind<T>) => valuesOf(held, kind);
    this.next = { held, set: ruleSetOf(values) };
  }

  private revive(e: SnapshotEntry): Held {
    const kind = this.kinds.get(e.kind);
    if (!kind) throw new Error(`${e.display}: a rules file of kind "${e.kind}" this worker does not know`);
    const value =
      "packed" in e.payload
        ? (kind.transfer as NonNullable<FileKind["transfer"]>).unpack(e.payload.packed)
        : kind.compile(e.display, e.payload.text, e.payload.companions).value;
    return { kind, display: e.display, stamp: e.stamp, value, diagnostics: e.diagnostics };
  }

  commit(): void {
    if (!this.next) return;
    this.held = this.next.held;
    this.current = this.next.set;
    this.next = undefined;
    this.changed.emit();
  }

  abort(): void {
    this.next = undefined;
  }

  values<T>(kind: FileKind<T>): T[] {
    return valuesOf(this.held, kind);
  }

  onChange(listener: () => void): () => void {
    return this.changed.subscribe(listener);
  }

  get subscribers(): number {
    return this.changed.count;
  }

  summary(): FileSummary[] {
    return [...this.held.values()]
      .sort((a, b) => (a.display < b.display ? -1 : 1))
      .map((e) => ({ file: e.display, kind: e.kind.name, entries: e.kind.count?.(e.value), errors: e.diagnostics.length }));
  }

  diagnostics(): Diagnostic[] {
    return [...this.held.values()].flatMap((e) => e.diagnostics);
  }

  /** The supervisor watches the files; a worker has nothing of its own to look at. */
  rescan(): void {}

  async settle(): Promise<void> {}
}

/** In path order, as RulesStore.values gives them: first match wins the same way everywhere. */
function valuesOf<T>(held: ReadonlyMap<string, Held>, kind: FileKind<T>): T[] {
  return [...held.values()]
    .filter((e) => e.kind === kind)
    .sort((a, b) => (a.display < b.display ? -1 : 1))
    .map((e) => e.value as T);
}
