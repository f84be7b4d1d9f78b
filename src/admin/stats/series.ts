/** What is counted per minute (and per second for the live rates). */
export const FIELDS = [
  "requests",
  "hits",
  "misses",
  "bytes",
  "savedBytes",
  "blockedRequests",
  "queries",
  "cachedQueries",
  "blockedQueries",
  "failedQueries",
] as const;

export type Field = (typeof FIELDS)[number];
export type Counts = Record<Field, number>;

/** One slot of the series as plain data: [slot start in epoch ms, ...counts in FIELDS order]. */
export type Row = number[];

export const zeroCounts = (): Counts => Object.fromEntries(FIELDS.map((f) => [f, 0])) as Counts;

/**
 * Counts per time slot in a fixed ring (1440 one-minute slots is a day): a slot is found by
 * arithmetic and reset when a new period reaches it, so counting costs an index and an add, and
 * memory never changes. Rows read back as plain numbers, which a supervisor could add up.
 */
export class Series {
  private readonly stamps: Float64Array;
  private readonly data: Float64Array;
  private readonly width = FIELDS.length;

  constructor(
    readonly slots: number,
    readonly slotMs: number,
  ) {
    this.stamps = new Float64Array(slots).fill(-1);
    this.data = new Float64Array(slots * this.width);
  }

  /** Adds to one field of the slot that holds `now`. */
  add(field: number, now: number, n = 1): void {
    const base = this.slot(now);
    (this.data[base + field] as number) += n;
  }

  private slot(now: number): number {
    const period = Math.floor(now / this.slotMs);
    const i = period % this.slots;
    const base = i * this.width;
    if (this.stamps[i] !== period) {
      this.stamps[i] = period;
      this.data.fill(0, base, base + this.width);
    }
    return base;
  }

  /** The sums over the last `count` slots up to and including the one holding `now`. */
  sum(now: number, count: number): Counts {
    const out = zeroCounts();
    const last = Math.floor(now / this.slotMs);
    for (let p = last - count + 1; p <= last; p++) {
      const i = p % this.slots;
      if (p < 0 || this.stamps[i] !== p) continue;
      FIELDS.forEach((f, k) => {
        out[f] += this.data[i * this.width + k] as number;
      });
    }
    return out;
  }

  /** Every slot of the ring up to `now` that counted something, oldest first, as plain rows. */
  rows(now: number): Row[] {
    const out: Row[] = [];
    const last = Math.floor(now / this.slotMs);
    for (let p = last - this.slots + 1; p <= last; p++) {
      const i = p % this.slots;
      if (p < 0 || this.stamps[i] !== p) continue;
      const values = Array.from(this.data.subarray(i * this.width, (i + 1) * this.width));
      if (values.some((v) => v !== 0)) out.push([p * this.slotMs, ...values]);
    }
    return out;
  }

  /** Adds rows counted elsewhere (the previous run's file, another worker); rows out of the ring are ignored. */
  absorb(rows: readonly Row[], now: number): void {
    const last = Math.floor(now / this.slotMs);
    for (const row of rows) {
      if (!Array.isArray(row) || typeof row[0] !== "number") continue;
      const p = Math.floor(row[0] / this.slotMs);
      if (p > last || p <= last - this.slots) continue;
      for (let k = 0; k < this.width; k++) {
        const v = row[k + 1];
        if (typeof v === "number" && Number.isFinite(v) && v > 0) this.add(k, p * this.slotMs, v);
      }
    }
  }
}

export const fieldIndex = Object.fromEntries(FIELDS.map((f, i) => [f, i])) as Record<Field, number>;
