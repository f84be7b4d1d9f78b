import type { Diagnostic } from "../config/diagnostic.js";
import { parseListLine } from "./list-parser.js";

// A compiled block or allow file. Written for lists of a million names: a lookup hashes every label
// suffix of the asked name in one right-to-left pass, checks a small bit filter (it stays in the
// CPU cache, so most suffixes cost nothing more), and probes an open-addressing table of 64-bit
// fingerprints for the rest. Measured here, a JS Map of a million strings costs 0.4-0.9 µs per hit
// (a cache miss for the bucket, another for the key string); the fingerprint table costs one, and
// keeps no strings at all (12 bytes an entry). Two different names share a 64-bit fingerprint with
// a probability around 1e-8 for a whole million-name list, which we accept. Globs are bucketed by
// the labels after their last '*'; regexes run last, and only when the hashes did not decide.

const EXACT = 0;
const SUBTREE = 1;
const CHILDREN = 2;
const KINDS = ["exact", "subtree", "children"];

export interface ListMatch {
  file: string;
  line: number;
  /** The rule as it applies: "ads.example.com", "*.ads.example.com", "/^ad[0-9]+\\./". */
  text: string;
  /** Labels of the matched entry; longer is more specific. Regexes count as 0. */
  specificity: number;
  exception: boolean;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const H2_SEED = 0x9747b28c;
const H2_MUL = 0x5bd1e995;

/** Two independent 32-bit hashes of a whole string, walked right to left like matchHashed does. */
function fingerprint(s: string): [number, number] {
  let h1 = FNV_OFFSET;
  let h2 = H2_SEED;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, FNV_PRIME);
    h2 = Math.imul(h2 ^ c, H2_MUL);
    h2 ^= h2 >>> 13;
  }
  return [h1 | 0, h2 | 0];
}

function labels(s: string): number {
  let n = 1;
  for (let i = s.indexOf("."); i >= 0; i = s.indexOf(".", i + 1)) n++;
  return n;
}

interface PatternRule {
  pattern: RegExp;
  line: number;
}

export interface EntrySetData {
  table: Int32Array | undefined;
  tableMask: number;
  filter: Uint32Array | undefined;
  filterMask: number;
  count: number;
  globs: [string, PatternRule[]][];
  looseGlobs: PatternRule[];
  regexes: PatternRule[];
}

export interface DomainListData {
  file: string;
  role: "block" | "allow";
  block: EntrySetData;
  allow: EntrySetData;
  stats: ListStats;
}

/** One side (block or allow) of a file's entries. */
class EntrySet {
  // Built up while compiling, then packed by seal(): [h1, h2, line * 4 + kind] per entry.
  private pending: number[] | undefined = [];
  private table: Int32Array | undefined;
  private tableMask = 0;
  private filter: Uint32Array | undefined;
  private filterMask = 0;
  private count = 0;
  /** Names as written, kept only when asked for (golden tests, small lists in explain output). */
  private readonly kept: Map<string, number> | undefined;
  readonly globs = new Map<string, PatternRule[]>();
  readonly looseGlobs: PatternRule[] = [];
  readonly regexes: PatternRule[] = [];

  constructor(keepNames: boolean) {
    this.kept = keepNames ? new Map() : undefined;
  }

  addName(name: string, kind: number, line: number): void {
    const [h1, h2] = fingerprint(name);
    (this.pending as number[]).push(h1, h2, line * 4 + kind);
    if (this.kept && !this.kept.has(name)) this.kept.set(name, line * 4 + kind);
  }

  get size(): number {
    let globs = 0;
    for (const g of this.globs.values()) globs += g.length;
    return this.count + globs + this.looseGlobs.length + this.regexes.length;
  }

  seal(): void {
    const pending = this.pending as number[];
    this.pending = undefined;
    const entries = pending.length / 3;
    let slots = 16;
    while (slots < entries * 2) slots *= 2;
    const table = new Int32Array(slots * 3);
    const mask = slots - 1;
    let count = 0;
    for (let e = 0; e < pending.length; e += 3) {
      const h1 = pending[e] as number;
      const h2 = pending[e + 1] as number;
      const value = pending[e + 2] as number;
      let slot = h1 & mask;
      for (;;) {
        const at = slot * 3;
        const stored = table[at + 2] as number;
        if (stored === 0) {
          table[at] = h1;
          table[at + 1] = h2;
          table[at + 2] = value + 1;
          count++;
          break;
        }
        if (table[at] === h1 && table[at + 1] === h2) {
          // A name listed twice keeps the wider match (subtree over exact), and the first line for it.
          const prevKind = (stored - 1) & 3;
          if (prevKind !== SUBTREE && (value & 3) !== EXACT) table[at + 2] = value + 1;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
    this.count = count;
    if (count > 0) {
      this.table = table;
      this.tableMask = mask;
    }
    const keys = count + this.globs.size;
    if (keys === 0) return;
    let bits = 1024;
    while (bits < keys * 12) bits *= 2;
    this.filter = new Uint32Array(bits / 32);
    this.filterMask = bits - 1;
    for (let e = 0; e < pending.length; e += 3) this.mark(pending[e] as number);
    for (const k of this.globs.keys()) this.mark(fingerprint(k)[0]);
  }

  private mark(h1: number): void {
    const b = h1 & this.filterMask;
    const filter = this.filter as Uint32Array;
    filter[b >>> 5] = (filter[b >>> 5] as number) | (1 << (b & 31));
  }

  private lookup(h1: number, h2: number): number {
    const table = this.table;
    if (!table) return 0;
    let slot = h1 & this.tableMask;
    for (;;) {
      const at = slot * 3;
      const stored = table[at + 2] as number;
      if (stored === 0) return 0;
      if (table[at] === h1 && table[at + 1] === h2) return stored - 1;
      slot = (slot + 1) & this.tableMask;
    }
  }

  /** Hash lookups only: names, and globs bucketed under a suffix; the longest matching suffix wins. */
  matchHashed(name: string): { line: number; text: string; specificity: number } | undefined {
    const filter = this.filter;
    if (!filter) return undefined;
    // Suffixes whose filter bit is set, shortest first: start offset and both hashes.
    let candidates: number[] | undefined;
    // The same hashes as fingerprint(), inlined to read them at every label boundary in one pass.
    let h1 = FNV_OFFSET;
    let h2 = H2_SEED;
    for (let i = name.length - 1; i >= 0; i--) {
      const c = name.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, FNV_PRIME);
      h2 = Math.imul(h2 ^ c, H2_MUL);
      h2 ^= h2 >>> 13;
      if (i === 0 || name.charCodeAt(i - 1) === 46 /* . */) {
        const b = h1 & this.filterMask;
        if ((filter[b >>> 5] as number) & (1 << (b & 31))) (candidates ??= []).push(i, h1 | 0, h2 | 0);
      }
    }
    if (!candidates) return undefined;
    for (let c = candidates.length - 3; c >= 0; c -= 3) {
      const start = candidates[c] as number;
      const v = this.lookup(candidates[c + 1] as number, candidates[c + 2] as number);
      if (v > 0) {
        const kind = v & 3;
        if (kind === SUBTREE || (kind === EXACT ? start === 0 : start > 0)) {
          const s = start === 0 ? name : name.slice(start);
          return { line: (v - kind) / 4, text: kind === CHILDREN ? `*.${s}` : s, specificity: labels(s) };
        }
      }
      if (this.globs.size > 0) {
        const s = start === 0 ? name : name.slice(start);
        const bucket = this.globs.get(s);
        if (bucket) {
          for (const g of bucket)
            if (g.pattern.test(name)) return { line: g.line, text: g.pattern.source, specificity: labels(s) };
        }
      }
    }
    return undefined;
  }

  matchPatterns(name: string): { line: number; text: string; specificity: number } | undefined {
    for (const g of this.looseGlobs) if (g.pattern.test(name)) return { line: g.line, text: g.pattern.source, specificity: 0 };
    for (const r of this.regexes)
      if (r.pattern.test(name)) return { line: r.line, text: `/${r.pattern.source}/`, specificity: 0 };
    return undefined;
  }

  /** Plain data for postMessage (typed arrays transferable, RegExps cloneable). */
  toTransfer(): EntrySetData {
    return {
      table: this.table,
      tableMask: this.tableMask,
      filter: this.filter,
      filterMask: this.filterMask,
      count: this.count,
      globs: [...this.globs],
      looseGlobs: this.looseGlobs,
      regexes: this.regexes,
    };
  }

  static fromTransfer(d: EntrySetData): EntrySet {
    const e = new EntrySet(false);
    e.pending = undefined;
    e.table = d.table;
    e.tableMask = d.tableMask;
    e.filter = d.filter;
    e.filterMask = d.filterMask;
    e.count = d.count;
    for (const [k, v] of d.globs) e.globs.set(k, v);
    e.looseGlobs.push(...d.looseGlobs);
    e.regexes.push(...d.regexes);
    return e;
  }

  /** Every entry as "side kind text :line": the compiled form that golden tests compare. */
  describe(side: string): string[] {
    const out: string[] = [];
    for (const [name, v] of this.kept ?? []) out.push(`${side} ${KINDS[v & 3]} ${name} :${(v - (v & 3)) / 4}`);
    for (const [suffix, rules] of this.globs)
      for (const g of rules) out.push(`${side} glob[${suffix}] ${g.pattern.source} :${g.line}`);
    for (const g of this.looseGlobs) out.push(`${side} glob ${g.pattern.source} :${g.line}`);
    for (const r of this.regexes) out.push(`${side} regex /${r.pattern.source}/ :${r.line}`);
    return out;
  }

  get hasPatterns(): boolean {
    return this.looseGlobs.length > 0 || this.regexes.length > 0;
  }
}

export interface ListStats {
  entries: number;
  exceptions: number;
  browserOnly: number;
  errors: number;
}

export class DomainList {
  block: EntrySet;
  allow: EntrySet;
  readonly stats: ListStats = { entries: 0, exceptions: 0, browserOnly: 0, errors: 0 };

  constructor(
    readonly file: string,
    /** "allow" for files under rules/allow: every entry is an allow entry. */
    readonly role: "block" | "allow",
    keepNames = false,
  ) {
    this.block = new EntrySet(keepNames);
    this.allow = new EntrySet(keepNames);
  }

  /** Compiles a file's text; returns the problems, each with its line. */
  static compile(
    file: string,
    role: "block" | "allow",
    text: string,
    opts: { keepNames?: boolean } = {},
  ): { list: DomainList; diagnostics: Diagnostic[] } {
    const list = new DomainList(file, role, opts.keepNames === true);
    const diagnostics: Diagnostic[] = [];
    let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
    let lineNo = 0;
    while (start <= text.length) {
      let end = text.indexOf("\n", start);
      if (end < 0) end = text.length;
      lineNo++;
      const raw = text.slice(start, end);
      start = end + 1;
      const parsed = parseListLine(raw);
      switch (parsed.type) {
        case "skip":
          break;
        case "browser-only":
          list.stats.browserOnly++;
          break;
        case "error":
          list.stats.errors++;
          diagnostics.push({ file, line: lineNo, code: parsed.code, message: parsed.message });
          break;
        case "domain": {
          const set = list.sideFor(parsed.exception);
          const kind = parsed.match === "exact" ? EXACT : parsed.match === "subtree" ? SUBTREE : CHILDREN;
          for (const name of parsed.names) set.addName(name, kind, lineNo);
          list.count(parsed.exception, parsed.names.length);
          break;
        }
        case "glob": {
          const set = list.sideFor(parsed.exception);
          const rule = { pattern: parsed.pattern, line: lineNo };
          if (parsed.suffix === undefined) set.looseGlobs.push(rule);
          else {
            const bucket = set.globs.get(parsed.suffix);
            if (bucket) bucket.push(rule);
            else set.globs.set(parsed.suffix, [rule]);
          }
          list.count(parsed.exception, 1);
          break;
        }
        case "regex":
          list.sideFor(parsed.exception).regexes.push({ pattern: parsed.pattern, line: lineNo });
          list.count(parsed.exception, 1);
          break;
      }
      if (end === text.length) break;
    }
    list.block.seal();
    list.allow.seal();
    return { list, diagnostics };
  }

  describe(): string[] {
    return [...this.block.describe("block"), ...this.allow.describe("allow")].sort();
  }

  toTransfer(): { data: DomainListData; transfer: ArrayBuffer[] } {
    const data: DomainListData = {
      file: this.file,
      role: this.role,
      block: this.block.toTransfer(),
      allow: this.allow.toTransfer(),
      stats: this.stats,
    };
    const transfer: ArrayBuffer[] = [];
    for (const side of [data.block, data.allow]) {
      if (side.table) transfer.push(side.table.buffer as ArrayBuffer);
      if (side.filter) transfer.push(side.filter.buffer as ArrayBuffer);
    }
    return { data, transfer };
  }

  static fromTransfer(d: DomainListData): DomainList {
    const list = new DomainList(d.file, d.role);
    list.block = EntrySet.fromTransfer(d.block);
    list.allow = EntrySet.fromTransfer(d.allow);
    Object.assign(list.stats, d.stats);
    return list;
  }

  private sideFor(exception: boolean): EntrySet {
    return this.role === "allow" || exception ? this.allow : this.block;
  }

  private count(exception: boolean, n: number): void {
    if (exception) this.stats.exceptions += n;
    else this.stats.entries += n;
  }
}
