import { randomBytes } from "node:crypto";

// Range requests answered from a stored complete response (RFC 9110 §14).

export type RangeResult =
  | { kind: "ignore" }
  | { kind: "unsatisfiable" }
  | { kind: "ranges"; ranges: [start: number, end: number][] };

export function parseRange(value: string, size: number): RangeResult {
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(value);
  if (!m) return { kind: "ignore" };
  const ranges: [number, number][] = [];
  for (const part of (m[1] as string).split(",")) {
    const spec = part.trim();
    if (spec === "") continue;
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === "" && r[2] === "")) return { kind: "ignore" };
    if (r[1] === "") {
      const suffix = Number(r[2]);
      if (suffix === 0) continue;
      ranges.push([Math.max(0, size - suffix), size - 1]);
    } else {
      const start = Number(r[1]);
      const end = r[2] === "" ? size - 1 : Math.min(Number(r[2]), size - 1);
      if (r[2] !== "" && Number(r[2]) < start) return { kind: "ignore" };
      if (start >= size) continue;
      ranges.push([start, end]);
    }
  }
  if (ranges.length === 0) return { kind: "unsatisfiable" };
  return { kind: "ranges", ranges };
}

export function multipartBody(
  body: Buffer,
  ranges: [number, number][],
  contentType: string | undefined,
): { boundary: string; body: Buffer } {
  const boundary = randomBytes(12).toString("hex");
  const parts: Buffer[] = [];
  for (const [start, end] of ranges) {
    const head = `\r\n--${boundary}\r\n${contentType ? `content-type: ${contentType}\r\n` : ""}content-range: bytes ${start}-${end}/${body.length}\r\n\r\n`;
    parts.push(Buffer.from(head), body.subarray(start, end + 1));
  }
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return { boundary, body: Buffer.concat(parts) };
}
