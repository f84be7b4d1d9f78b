import { existsSync } from "node:fs";
import type { Diagnostic } from "../config/diagnostic.js";
import type { Config } from "../config/schema.js";
import { Channel } from "../events/events.js";
import type { Logger } from "../log/logger.js";
import { allowFiles, blockFiles, firewallFile, interceptFiles } from "./kinds.js";
import { RemoteLists } from "./remote.js";
import { RuleSet } from "./ruleset.js";
import { type FileKind, type FileSummary, RulesStore, type SnapshotEntry } from "./store.js";

const SCAN_INTERVAL_MS = 1000;

/** A part that reacts to a rules change and fails: reported, and the others are still told. */
export const reportListener = (channel: string, err: unknown) =>
  process.emitWarning(`a ${channel} listener failed: ${(err as Error)?.message ?? String(err)}`);

/**
 * What the serving parts read of the rules: the RuleSet in force and the compiled files of other
 * kinds. A single process reads its own files (Rules); a worker process reads what the supervisor
 * handed it (MirroredRules).
 */
export interface RuleSource {
  readonly current: RuleSet;
  /** The directories rule files come from, for showing rule paths relative to them. */
  readonly roots: string[];
  values<T>(kind: FileKind<T>): T[];
  /** Called after every change to the compiled rules; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  readonly subscribers: number;
  summary(): FileSummary[];
  diagnostics(): Diagnostic[];
  /** Look at the files now (an admin's edit) instead of at the next tick. */
  rescan(): void;
  /** Resolves once changes already seen have been applied. */
  settle(): Promise<void>;
}

/** The RuleSet made from compiled files: the same in a single process and in every worker. */
export function ruleSetOf(values: <T>(kind: FileKind<T>) => T[]): RuleSet {
  const lists = [...values(blockFiles), ...values(allowFiles)];
  const [firewall] = values(firewallFile);
  return new RuleSet(lists, firewall, values(interceptFiles));
}

/**
 * The rules as the rest of gatehouse sees them: the current RuleSet (swapped whole when any file
 * changes) and the compiled values of other kinds (DNS local records) for whoever registered them.
 * Life: load() reads and compiles everything; start() watches and downloads; close() stops both.
 */
export class Rules implements RuleSource {
  private readonly store: RulesStore;
  private remote: RemoteLists | undefined;
  /** Told after every change to the compiled rules (a listener that throws is reported, not fatal). */
  private readonly changed = new Channel<void>("rules change", reportListener);
  current: RuleSet = RuleSet.empty();

  constructor(
    private readonly config: Pick<Config, "rules" | "lists" | "listsDir">,
    private readonly log: Logger | undefined,
    extraKinds: readonly FileKind[] = [],
  ) {
    this.store = new RulesStore(
      [
        { dir: config.rules, kinds: [blockFiles, allowFiles, firewallFile, interceptFiles, ...extraKinds] },
        { dir: config.listsDir, kinds: [blockFiles, allowFiles] },
      ],
      log,
    );
  }

  /** The directories rule files come from, for showing rule paths relative to them. */
  get roots(): string[] {
    return [this.config.rules, this.config.listsDir];
  }

  /** A missing rules directory is not an error (it is watched and may appear), but it is news. */
  get missingDirectory(): string | undefined {
    return existsSync(this.config.rules) ? undefined : this.config.rules;
  }

  /** Reads and compiles every file (the first load, inline). */
  load(): void {
    const missing = this.missingDirectory;
    if (missing)
      this.log?.warn(
        { dir: missing },
        `rules directory ${missing} does not exist; no rules apply until it is created (it is watched)`,
      );
    this.store.scan();
    this.rebuild();
  }

  private rebuild(): void {
    this.current = ruleSetOf((kind) => this.store.values(kind));
    this.changed.emit();
  }

  /** Watch rules/ and start downloading remote lists; changes apply within about a second. */
  start(): void {
    this.store.watch(SCAN_INTERVAL_MS, () => this.rebuild());
    if (this.config.lists.length > 0 && this.log) {
      this.remote = new RemoteLists(this.config.lists, this.config.listsDir, this.log);
      this.remote.start(() => this.rescan());
    }
  }

  /** SIGHUP, or a remote list updated: rescan now instead of at the next tick. */
  rescan(): void {
    if (this.store.scan()) this.rebuild();
  }

  /** Called after every change to the compiled rules; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    return this.changed.subscribe(listener);
  }

  /** How many onChange listeners are registered (a reload must not leave more behind). */
  get subscribers(): number {
    return this.changed.count;
  }

  values<T>(kind: FileKind<T>): T[] {
    return this.store.values(kind);
  }

  diagnostics() {
    return this.store.diagnostics();
  }

  /** The files in force, for worker processes; see RulesStore.snapshot. */
  snapshot(known?: ReadonlyMap<string, string>): { entries: SnapshotEntry[]; stamps: Map<string, string> } {
    return this.store.snapshot(known);
  }

  summary(): FileSummary[] {
    return this.store.summary();
  }

  /** Resolves once changes already seen (off-thread compiles, downloads) have been applied. */
  async settle(): Promise<void> {
    await this.remote?.settle();
    await this.store.settle();
  }

  async close(): Promise<void> {
    await this.remote?.stop();
    this.remote = undefined;
    await this.store.close();
  }
}
