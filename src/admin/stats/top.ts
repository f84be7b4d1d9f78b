/** One hour of one top list as plain data: what the disk file holds and what a supervisor would sum. */
export interface HourCounts {
  /** Epoch ms of the hour's start. */
  start: number;
  counts: Record<string, number>;
  /** A word per key (the rule that blocked a name), when the list keeps one. */
  notes?: Record<string, string>;
}

export interface TopEntry {
  key: string;
  count: number;
  note?: string;
}

const HOUR_MS = 3_600_000;

export interface TopOptions {
  /** Keys kept per closed hour (the rest are dropped when the hour closes). */
  keep: number;
  /** Keys the open hour may hold; past it the least counted half is dropped. */
  cap: number;
  /** Hours in the window. */
  hours: number;
}

interface Hour {
  start: number;
  counts: Map<string, number>;
}

/**
 * Counts per key over the last `hours` hours, AdGuard Home's way: each hour is counted on its own
 * and, once closed, keeps only its `keep` biggest keys. Counting a key is one map update in the
 * open hour (this runs for every request and query); the closed hours' sums are kept beside them,
 * updated when an hour closes or leaves the window, so asking for the top n is one pass over at
 * most hours × keep + cap keys, never a merge of every hour. Memory is bounded by those same
 * numbers (and keys are cut to 255 characters).
 */
export class TopWindow {
  private closed: Hour[] = [];
  private open: Hour = { start: 0, counts: new Map() };
  /** Sums over the closed hours in the window. */
  private readonly closedTotals = new Map<string, number>();
  private readonly notes = new Map<string, string>();

  constructor(private readonly o: TopOptions) {}

  add(key: string, now: number, note?: string): void {
    if (now >= this.open.start + HOUR_MS) this.roll(now);
    const k = key.length > 255 ? key.slice(0, 255) : key;
    const counts = this.open.counts;
    const c = counts.get(k);
    if (c === undefined) {
      if (counts.size >= this.o.cap) this.prune(this.open, Math.floor(this.o.cap / 2));
      counts.set(k, 1);
    } else counts.set(k, c + 1);
    if (note !== undefined) this.notes.set(k, note);
  }

  /** The n biggest keys of the window, biggest first. */
  top(n: number, now: number): TopEntry[] {
    if (now >= this.open.start + HOUR_MS) this.roll(now);
    // A small sorted array beats sorting every key: n is 10-ish, the keys thousands.
    const best: [string, number][] = [];
    const consider = (key: string, count: number) => {
      if (best.length === n && count <= (best[n - 1] as [string, number])[1]) return;
      let i = best.length;
      while (i > 0 && (best[i - 1] as [string, number])[1] < count) i--;
      best.splice(i, 0, [key, count]);
      if (best.length > n) best.pop();
    };
    const open = this.open.counts;
    for (const [key, count] of this.closedTotals) consider(key, count + (open.get(key) ?? 0));
    for (const [key, count] of open) if (!this.closedTotals.has(key)) consider(key, count);
    return best.map(([key, count]) => {
      const note = this.notes.get(key);
      return note === undefined ? { key, count } : { key, count, note };
    });
  }

  /** Distinct keys counted in the window (bounded, so a lower bound when lists were cut). */
  get size(): number {
    let n = this.closedTotals.size;
    for (const key of this.open.counts.keys()) if (!this.closedTotals.has(key)) n++;
    return n;
  }

  private roll(now: number): void {
    const start = now - (now % HOUR_MS);
    if (this.open.counts.size > 0) {
      this.prune(this.open, this.o.keep);
      this.closed.push(this.open);
      for (const [key, count] of this.open.counts) this.closedTotals.set(key, (this.closedTotals.get(key) ?? 0) + count);
    }
    this.open = { start, counts: new Map() };
    const oldest = start - (this.o.hours - 1) * HOUR_MS;
    while (this.closed.length > 0 && (this.closed[0] as Hour).start < oldest) {
      for (const [key, count] of (this.closed.shift() as Hour).counts) this.subtract(key, count);
    }
  }

  /** Keeps the `keep` biggest keys of an hour; what a closed hour drops leaves the sums too. */
  private prune(hour: Hour, keep: number): void {
    if (hour.counts.size <= keep) return;
    const sorted = [...hour.counts].sort((a, b) => b[1] - a[1]);
    for (const [key, count] of sorted.slice(keep)) {
      hour.counts.delete(key);
      if (hour === this.open) {
        if (!this.closedTotals.has(key)) this.notes.delete(key);
      } else this.subtract(key, count);
    }
  }

  private subtract(key: string, count: number): void {
    const left = (this.closedTotals.get(key) ?? 0) - count;
    if (left > 0) this.closedTotals.set(key, left);
    else {
      this.closedTotals.delete(key);
      if (!this.open.counts.has(key)) this.notes.delete(key);
    }
  }

  /** Every hour as plain data, oldest first (the open one last). */
  snapshot(): HourCounts[] {
    return [...this.closed, this.open]
      .filter((h) => h.counts.size > 0)
      .map((h) => {
        const counts = Object.fromEntries(h.counts);
        const notes: Record<string, string> = {};
        for (const k of h.counts.keys()) {
          const note = this.notes.get(k);
          if (note !== undefined) notes[k] = note;
        }
        return Object.keys(notes).length > 0 ? { start: h.start, counts, notes } : { start: h.start, counts };
      });
  }

  /**
   * Adds hours counted elsewhere (the file of the previous run, another worker) to this window,
   * summing per key. Hours outside the window are ignored.
   */
  absorb(hours: readonly HourCounts[], now: number): void {
    if (now >= this.open.start + HOUR_MS) this.roll(now);
    const oldest = this.open.start - (this.o.hours - 1) * HOUR_MS;
    for (const h of hours) {
      if (!Number.isFinite(h.start) || h.start < oldest || h.start > this.open.start) continue;
      const start = h.start - (h.start % HOUR_MS);
      let target = start === this.open.start ? this.open : this.closed.find((c) => c.start === start);
      if (!target) {
        target = { start, counts: new Map() };
        this.closed.push(target);
        this.closed.sort((a, b) => a.start - b.start);
      }
      for (const [key, count] of Object.entries(h.counts)) {
        if (typeof count !== "number" || !(count > 0)) continue;
        const k = key.slice(0, 255);
        target.counts.set(k, (target.counts.get(k) ?? 0) + count);
        if (target !== this.open) this.closedTotals.set(k, (this.closedTotals.get(k) ?? 0) + count);
        const note = h.notes?.[key];
        if (typeof note === "string") this.notes.set(k, note.slice(0, 300));
      }
      if (target !== this.open) this.prune(target, this.o.keep);
      else if (target.counts.size > this.o.cap) this.prune(target, Math.floor(this.o.cap / 2));
    }
  }
}
