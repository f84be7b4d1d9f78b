import { type FSWatcher, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { join, relative } from "node:path";
import { type Diagnostic, formatDiagnostic } from "../config/diagnostic.js";
import { Tasks } from "../lifecycle/tasks.js";
import type { Logger } from "../log/logger.js";

/** A kind of file under a rules root: which paths it claims and how it compiles. */
export interface FileKind<T = unknown> {
  readonly name: string;
  /** `rel` is relative to the root, with "/" separators: "block/ads.txt", "firewall.rules". */
  matches(rel: string): boolean;
  compile(display: string, text: string, companions?: (string | undefined)[]): { value: T; diagnostics: Diagnostic[] };
  /**
   * Files read with this one (a certificate's key beside it), as paths relative to the same root:
   * a change to any of them recompiles this file; their texts (undefined if missing) go to compile.
   */
  companions?(rel: string): string[];
  /** The same, off the main thread; used for big files once gatehouse is serving. */
  compileOffThread?(display: string, text: string): Promise<{ value: T; diagnostics: Diagnostic[] }>;
  /** Entries a compiled file holds, for the start and reload log lines. */
  count?(value: T): number;
  /**
   * How a compiled value crosses to worker processes (structured clone): kinds without it are
   * handed over as the text that compiled without problems and compiled again there.
   */
  transfer?: { pack(value: T): unknown; unpack(data: unknown): T };
}

/** One file as the supervisor hands it to the workers: compiled where the kind can be cloned, else its good text. */
export interface SnapshotEntry {
  abs: string;
  kind: string;
  display: string;
  stamp: string;
  diagnostics: Diagnostic[];
  payload: { packed: unknown } | { text: string; companions: (string | undefined)[] };
}

/** One file as the store holds it, for logs, `check` and the admin API. */
export interface FileSummary {
  file: string;
  kind: string;
  entries: number | undefined;
  errors: number;
}

/** Files at least this big are compiled off the main thread while serving (~0.1 s of work). */
const OFF_THREAD_BYTES = 2 * 1024 * 1024;

export interface Root {
  dir: string;
  kinds: readonly FileKind[];
}

interface Entry {
  kind: FileKind;
  display: string;
  stamp: string;
  /** The last version that compiled without problems, or the first one seen. */
  value: unknown;
  diagnostics: Diagnostic[];
  good: boolean;
  /** The text of `value`, kept for kinds that cannot hand a compiled value to workers. */
  source: { text: string; companions: (string | undefined)[] } | undefined;
}

const MAX_DEPTH = 2;

/**
 * The files under rules/ (and the downloaded remote lists), compiled per file. A scan re-reads only
 * files whose size, mtime or inode changed (an editor's save-by-rename changes the inode), so a
 * one-line edit never recompiles a million-line list. A file that now has errors keeps its last
 * good version in force; its problems are logged as file:line: reason.
 */
export class RulesStore {
  private entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private watchers: FSWatcher[] = [];
  private pending: NodeJS.Timeout | undefined;
  /** Set while watching: big files compile off the main thread and report here when done. */
  private onLateChange: (() => void) | undefined;
  private readonly compiling = new Map<string, string>();
  private readonly tasks: Tasks;

  constructor(
    private readonly roots: readonly Root[],
    private readonly log: Logger | undefined,
  ) {
    this.tasks = new Tasks(log ?? { warn: (_o, msg) => process.emitWarning(msg) }, "rules");
  }

  /** Reads every file; returns true if anything changed since the last scan. */
  scan(): boolean {
    const seen = new Set<string>();
    let changed = false;
    for (const root of this.roots) {
      for (const rel of listFiles(root.dir, "", 0)) {
        const kind = root.kinds.find((k) => k.matches(rel));
        if (!kind) continue;
        const abs = join(root.dir, rel);
        seen.add(abs);
        if (this.load(abs, kind, displayPath(root.dir, rel))) changed = true;
      }
    }
    for (const abs of this.compiling.keys()) if (!seen.has(abs)) this.compiling.delete(abs);
    for (const [abs, entry] of this.entries) {
      if (seen.has(abs)) continue;
      this.entries.delete(abs);
      this.log?.info({ file: entry.display }, `${entry.display}: removed; its rules no longer apply`);
      changed = true;
    }
    return changed;
  }

  private load(abs: string, kind: FileKind, display: string): boolean {
    const others = kind.companions?.(abs) ?? [];
    let stamp: string;
    let text: string;
    let companionTexts: (string | undefined)[] = [];
    try {
      stamp = stampOf(abs, others);
      const previous = this.entries.get(abs);
      if (previous && previous.stamp === stamp) return false;
      text = readFileSync(abs, "utf8");
      companionTexts = others.map(readIfThere);
      // Caught mid-write: leave it for the next scan.
      if (stampOf(abs, others) !== stamp) return false;
    } catch (err) {
      this.log?.warn(
        { file: display, err: (err as Error).message },
        `${display}: cannot read; the last good version stays in force`,
      );
      return false;
    }
    if (this.onLateChange && kind.compileOffThread && text.length >= OFF_THREAD_BYTES) {
      if (this.compiling.get(abs) === stamp) return false;
      this.compiling.set(abs, stamp);
      const notify = this.onLateChange;
      this.tasks.run(`compile ${display}`, async () => {
        let compiled: { value: unknown; diagnostics: Diagnostic[] };
        let current = false;
        try {
          compiled = await (kind.compileOffThread as NonNullable<FileKind["compileOffThread"]>)(display, text);
        } finally {
          // A newer version of the file (or its removal) since this compile started wins.
          current = this.compiling.get(abs) === stamp;
          if (current) this.compiling.delete(abs);
        }
        if (!current) return;
        if (this.apply(abs, kind, display, stamp, compiled.value, compiled.diagnostics, { text, companions: companionTexts }))
          notify();
      });
      return false;
    }
    const { value, diagnostics } = kind.compile(display, text, companionTexts);
    return this.apply(abs, kind, display, stamp, value, diagnostics, { text, companions: companionTexts });
  }

  private apply(
    abs: string,
    kind: FileKind,
    display: string,
    stamp: string,
    value: unknown,
    diagnostics: Diagnostic[],
    text: { text: string; companions: (string | undefined)[] },
  ): boolean {
    const previous = this.entries.get(abs);
    const good = diagnostics.length === 0;
    for (const d of diagnostics) this.log?.error({ file: d.file, line: d.line, code: d.code }, formatDiagnostic(d));
    if (!good && previous?.good) {
      this.log?.warn({ file: display }, `${display}: has errors; its last good version stays in force until they are fixed`);
      this.entries.set(abs, { ...previous, stamp, diagnostics });
      return false;
    }
    this.entries.set(abs, { kind, display, stamp, value, diagnostics, good, source: kind.transfer ? undefined : text });
    if (previous) {
      const entries = kind.count?.(value);
      this.log?.info({ file: display, entries }, `${display}: reloaded${entries === undefined ? "" : ` (${entries} entries)`}`);
    }
    return true;
  }

  /** Compiled values of one kind, in path order (stable across scans). */
  values<T>(kind: FileKind<T>): T[] {
    return [...this.entries.values()]
      .filter((e) => e.kind === kind)
      .sort((a, b) => (a.display < b.display ? -1 : 1))
      .map((e) => e.value as T);
  }

  diagnostics(): Diagnostic[] {
    return [...this.entries.values()].flatMap((e) => e.diagnostics);
  }

  /**
   * Every file as it is in force, for worker processes. `known` (path → stamp the workers hold)
   * leaves out the packing of files they already have: a one-line edit does not ship a big list.
   */
  snapshot(known: ReadonlyMap<string, string> = new Map()): { entries: SnapshotEntry[]; stamps: Map<string, string> } {
    const entries: SnapshotEntry[] = [];
    const stamps = new Map<string, string>();
    for (const [abs, e] of this.entries) {
      stamps.set(abs, e.stamp);
      if (known.get(abs) === e.stamp) continue;
      const payload = e.kind.transfer
        ? { packed: e.kind.transfer.pack(e.value) }
        : { text: e.source?.text ?? "", companions: e.source?.companions ?? [] };
      entries.push({ abs, kind: e.kind.name, display: e.display, stamp: e.stamp, diagnostics: e.diagnostics, payload });
    }
    return { entries, stamps };
  }

  summary(): FileSummary[] {
    return [...this.entries.values()]
      .sort((a, b) => (a.display < b.display ? -1 : 1))
      .map((e) => ({ file: e.display, kind: e.kind.name, entries: e.kind.count?.(e.value), errors: e.diagnostics.length }));
  }

  /** Resolves once every off-thread compile started so far has been applied. */
  settle(): Promise<void> {
    return this.tasks.settle();
  }

  /** Rescans every `intervalMs`, and soon after the file system reports a change. */
  watch(intervalMs: number, onChange: () => void): void {
    this.onLateChange = onChange;
    const rescan = () => {
      if (this.scan()) onChange();
    };
    this.timer = setInterval(rescan, intervalMs);
    this.timer.unref();
    for (const root of this.roots) {
      for (const dir of listDirs(root.dir, 0)) {
        try {
          const w = watch(dir, () => {
            clearTimeout(this.pending);
            this.pending = setTimeout(rescan, 100);
          });
          w.on("error", () => w.close());
          w.unref();
          this.watchers.push(w);
        } catch {
          // The directory may not exist yet; the interval scan still finds it when it appears.
        }
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.pending);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.onLateChange = undefined;
    await this.tasks.settle();
  }
}

/** Inode, size and mtime of a file and its companions: any save (in place or by rename) changes it. */
function stampOf(abs: string, companions: readonly string[]): string {
  const st = statSync(abs);
  let stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
  for (const c of companions) {
    try {
      const cs = statSync(c);
      stamp += `|${cs.ino}:${cs.size}:${cs.mtimeMs}`;
    } catch {
      stamp += "|-";
    }
  }
  return stamp;
}

function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function listFiles(dir: string, prefix: string, depth: number): string[] {
  let names: import("node:fs").Dirent[];
  try {
    names = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const d of names) {
    if (d.name.startsWith(".") || d.name.endsWith("~") || d.name.endsWith(".swp")) continue;
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory() && depth < MAX_DEPTH) out.push(...listFiles(dir, rel, depth + 1));
    else if (d.isFile()) out.push(rel);
  }
  return out;
}

function listDirs(dir: string, depth: number): string[] {
  const out = [dir];
  if (depth >= MAX_DEPTH) return out;
  try {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (d.isDirectory() && !d.name.startsWith(".")) out.push(...listDirs(join(dir, d.name), depth + 1));
    }
  } catch {
    // Missing directory: nothing to watch.
  }
  return out;
}

/** "rules/block/ads.txt" as the admin knows it: relative to the working directory when inside it. */
function displayPath(dir: string, rel: string): string {
  const full = join(dir, rel);
  const fromCwd = relative(process.cwd(), full);
  return fromCwd.startsWith("..") ? full : fromCwd;
}
