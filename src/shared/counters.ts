import { type Counts, FIELDS, zeroCounts } from "../admin/stats/series.js";
import type { Stats } from "../admin/stats/stats.js";
import type { SharedRedis, SharedStatus } from "./redis.js";

// The dashboard's counters added up over every box. Each box adds what its own dashboard counted
// (the same Stats, so the totals agree with what each box shows) to one Redis hash per minute,
// `gatehouse:v1:stats:<minute start, epoch ms>`, every few seconds; and says it is alive in the
// sorted set `gatehouse:v1:boxes` (score: when it last reported). A box whose admin is off
// (admin.listen "") counts nothing, so it adds nothing.

export const STATS_PREFIX = "gatehouse:v1:stats:";
export const BOXES_KEY = "gatehouse:v1:boxes";
const MINUTE = 60_000;
const FLUSH_MS = 5_000;
/** The overview sums the last hour; the minutes are kept a little longer. */
const SUMMED_MINUTES = 60;
const KEEP_MS = 2 * 60 * MINUTE;
/** A box that has not reported for this long is not counted among the boxes. */
export const ACTIVE_MS = 2 * MINUTE;

export interface SharedOverview extends SharedStatus {
  /** This box's name among them. */
  box: string;
  /** Boxes that reported in the last two minutes (this one included when Redis is up). */
  boxes?: string[];
  /** The last hour's counters, every box added up. */
  hour?: Counts;
}

const minuteKey = (period: number): string => `${STATS_PREFIX}${period * MINUTE}`;

export class SharedCounters {
  /** The dashboard counts were read from; another one (a reload replaced it) starts afresh. */
  private source: Stats | undefined;
  /** Per minute (the last two), what was added to Redis so far, in FIELDS order. */
  private readonly added = new Map<number, number[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: SharedRedis,
    /** The dashboard's counts in force; undefined while nothing is counted. */
    private readonly stats: () => Stats | undefined,
    /** How this box is named among the boxes: host name and process. */
    readonly box: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Says at once that this box is here, and takes what its dashboard counted before as added. */
  start(): void {
    if (!this.redis.enabled) return;
    this.flush();
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** The counts since the last flush go to Redis; then this box leaves the list of boxes. */
  close(): void {
    clearInterval(this.timer);
    if (this.timer === undefined) return;
    this.timer = undefined;
    this.flush();
    this.redis.write((r) => r.zrem(BOXES_KEY, this.box));
  }

  /**
   * Adds what was counted since the last flush, for this minute and the one before (counts land in
   * a minute until it ends). While Redis is down nothing is marked added, so the last two minutes
   * are caught up when it is back; older ones are not.
   */
  flush(): void {
    const stats = this.stats();
    const now = this.now();
    const last = Math.floor(now / MINUTE);
    if (stats !== this.source) {
      // Counts this dashboard held before (a previous run's history) were added by whoever counted them.
      this.source = stats;
      this.added.clear();
      if (stats) for (const p of [last - 1, last]) this.added.set(p, values(stats, p));
    }
    // A process that counts nothing (a box without an admin; a worker process, if its supervisor
    // counts for it) is not listed among the boxes.
    if (!this.redis.up || !stats) return;
    const deltas: [number, number[]][] = [];
    for (const p of [last - 1, last]) {
      const counted = values(stats, p);
      const before = this.added.get(p);
      this.added.set(p, counted);
      const delta = counted.map((v, i) => v - (before?.[i] ?? 0));
      if (delta.some((d) => d > 0)) deltas.push([p, delta]);
    }
    for (const p of this.added.keys()) if (p < last - 1) this.added.delete(p);
    this.redis.write((r) => {
      const m = r.multi();
      for (const [p, delta] of deltas) {
        delta.forEach((d, i) => {
          if (d > 0) m.hincrby(minuteKey(p), FIELDS[i] as string, d);
        });
        m.pexpire(minuteKey(p), KEEP_MS);
      }
      m.zadd(BOXES_KEY, now, this.box);
      m.zremrangebyscore(BOXES_KEY, "-inf", now - KEEP_MS);
      return m.exec();
    });
  }

  /** The boxes and their summed counters, or only the connection's state when Redis cannot say. */
  async overview(): Promise<SharedOverview> {
    const base = { ...this.redis.status(), box: this.box };
    const now = this.now();
    const last = Math.floor(now / MINUTE);
    const read = this.redis.read((r) => {
      const p = r.pipeline();
      p.zrangebyscore(BOXES_KEY, now - ACTIVE_MS, "+inf");
      for (let m = last - SUMMED_MINUTES + 1; m <= last; m++) p.hgetall(minuteKey(m));
      return p.exec();
    });
    const replies = read ? await read : undefined;
    if (!replies || replies.some(([err]) => err)) return base;
    const [boxes, ...minutes] = replies.map(([, v]) => v);
    const hour = zeroCounts();
    for (const m of minutes) {
      for (const f of FIELDS) {
        const v = Number((m as Record<string, string> | null)?.[f] ?? 0);
        if (Number.isFinite(v)) hour[f] += v;
      }
    }
    return { ...base, boxes: (boxes as string[]).sort(), hour };
  }
}

function values(stats: Stats, period: number): number[] {
  const counts = stats.minutes.sum(period * MINUTE, 1);
  return FIELDS.map((f) => counts[f]);
}
