// Cache-Control as RFC 9111 §5.2 defines it: comma-separated directives, names case-insensitive,
// values as tokens or quoted strings. Malformed input never throws: a bad delta-seconds value makes
// the directive invalid (callers then treat freshness conservatively, §4.2.1), and huge numbers are
// capped at 2^31 seconds (§1.2.2).

export const MAX_DELTA = 2_147_483_648;

export type Directives = Map<string, string | true>;

export function parseCacheControl(value: string | string[] | undefined): Directives {
  const out: Directives = new Map();
  if (value === undefined) return out;
  const text = Array.isArray(value) ? value.join(",") : value;
  let i = 0;
  while (i < text.length) {
    // name
    while (i < text.length && (text[i] === "," || text[i] === " " || text[i] === "\t")) i++;
    let j = i;
    while (j < text.length && text[j] !== "=" && text[j] !== ",") j++;
    const name = text.slice(i, j).trim().toLowerCase();
    let val: string | true = true;
    i = j;
    if (text[i] === "=") {
      i++;
      while (text[i] === " " || text[i] === "\t") i++;
      if (text[i] === '"') {
        let k = i + 1;
        let s = "";
        while (k < text.length && text[k] !== '"') {
          if (text[k] === "\\" && k + 1 < text.length) k++;
          s += text[k];
          k++;
        }
        val = s;
        i = k + 1;
        while (i < text.length && text[i] !== ",") i++;
      } else {
        let k = i;
        while (k < text.length && text[k] !== ",") k++;
        val = text.slice(i, k).trim();
        i = k;
      }
    }
    if (name && !out.has(name)) out.set(name, val);
    else if (name && out.has(name)) out.set(`${name}#dup`, val);
  }
  return out;
}

/**
 * A delta-seconds directive: its value, or "invalid" when present but not digits (or repeated with
 * a different value), or undefined when absent.
 */
export function deltaSeconds(d: Directives, name: string): number | "invalid" | undefined {
  const v = d.get(name);
  if (v === undefined) return undefined;
  const dup = d.get(`${name}#dup`);
  if (dup !== undefined && dup !== v) return "invalid";
  if (v === true || !/^\d+$/.test(v)) return "invalid";
  const n = Number(v);
  return Math.min(n, MAX_DELTA);
}

/** Field names listed in no-cache="a, b" or private="a". */
export function fieldList(d: Directives, name: string): string[] | undefined {
  const v = d.get(name);
  if (typeof v !== "string") return undefined;
  const names = v
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  return names.length > 0 ? names : undefined;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH = MONTHS.join("|");
const DAY = "Mon|Tue|Wed|Thu|Fri|Sat|Sun";
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d{2}) (${MONTH}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`);
const RFC850 = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-(${MONTH})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`,
);
const ASCTIME = new RegExp(`^(?:${DAY}) (${MONTH}) ( \\d|\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`);

/**
 * An HTTP-date (RFC 9110 §5.6.7) in ms, or undefined if the value is not one. Only the three forms
 * the RFC names are dates: IMF-fixdate, the obsolete RFC 850 form (two-digit years more than 50
 * years ahead are in the past century) and asctime. Anything else, however readable to
 * Date.parse ("2024-01-01", "Sun, 06 Nov 1994 08:49:37 UTC"), is invalid, which makes an Expires
 * mean "already stale" (RFC 9111 §5.3).
 */
export function parseHttpDate(value: string | string[] | undefined, now = Date.now()): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  let m = IMF_FIXDATE.exec(value);
  if (m) return utc(Number(m[3]), m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  m = RFC850.exec(value);
  if (m) {
    const yy = Number(m[3]);
    const thisYear = new Date(now).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + yy;
    if (year > thisYear + 50) year -= 100;
    return utc(year, m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  }
  m = ASCTIME.exec(value);
  if (m)
    return utc(Number(m[6]), m[1] as string, Number((m[2] as string).trim()), m[3] as string, m[4] as string, m[5] as string);
  return undefined;
}

function utc(year: number, month: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const mon = MONTHS.indexOf(month);
  const h = Number(hh);
  const mi = Number(mm);
  const s = Number(ss);
  if (h > 23 || mi > 59 || s > 60 || day < 1) return undefined;
  const ms = Date.UTC(year, mon, day, h, mi, Math.min(s, 59));
  // Date.UTC rolls 31 Feb over into March; such a date is not a date.
  return new Date(ms).getUTCDate() === day ? ms : undefined;
}
