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

/** An HTTP date (IMF-fixdate, and the obsolete forms Date.parse accepts), in ms; undefined if invalid. */
export function parseHttpDate(value: string | string[] | undefined): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
